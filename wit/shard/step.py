"""Pipeline step `shard`: RUN/final -> RUN/shards (NNNNN.tar + NNNNN.parquet + _stats.json)."""

from __future__ import annotations

from wit.io import folders
from wit.shard.job import write_shards


def run_step(ctx) -> dict:
    (final,) = ctx.inputs
    return write_shards(folders.expand(final, (".parquet",)), ctx.output, ctx.spec.shard.samples_per_shard,
                        **ctx.runner_kwargs())
