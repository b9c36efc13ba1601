"""The shard job: balanced parts -> NNNNN.tar + NNNNN.parquet + _stats.json; `wit shard` and the step call it."""

from __future__ import annotations

from wit.distributed import global_ops
from wit.runners import run_stage
from wit.shard.stage import ShardStage, write_stats


def write_shards(inputs: list[str], out: str, samples_per_shard: int, **runner_kwargs) -> dict:
    """Cut ``inputs`` into chunks of ``samples_per_shard``, one shard task each; add the shards' stats."""
    chunks = global_ops.make_chunks(inputs, out, samples_per_shard, **runner_kwargs)
    if not chunks:
        raise ValueError(f"shard: no samples in {len(inputs)} input file(s)")
    rep = run_stage(ShardStage(), chunks, out, **runner_kwargs).as_dict()
    rep["stats"] = write_stats(out, samples_per_shard)
    return rep

