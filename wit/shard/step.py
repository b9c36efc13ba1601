"""Pipeline step `shard`: RUN/final -> RUN/shards (NNNNN.tar + NNNNN.parquet + _stats.json)."""

from __future__ import annotations

from wit.distributed import global_ops
from wit.io import folders
from wit.runners import run_stage
from wit.shard.stage import ShardStage, write_stats


def write_shards(inputs: list[str], out: str, samples_per_shard: int, **runner_kwargs) -> dict:
    chunks = global_ops.make_chunks(inputs, out, samples_per_shard, **runner_kwargs)
    if not chunks:
        raise ValueError(f"shard: no samples in {len(inputs)} input file(s)")
    rep = run_stage(ShardStage(), chunks, out, **runner_kwargs).as_dict()
    rep["stats"] = write_stats(out, samples_per_shard)
    return rep


def run_step(ctx) -> dict:
    inputs = folders.expand(ctx.folder("balance_final"), (".parquet",))
    return write_shards(inputs, ctx.folder("shard"), ctx.spec.shard.samples_per_shard, **ctx.runner_kwargs())
