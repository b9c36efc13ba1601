"""Pipeline step `match`: RUN/queries/queries.parquet + RUN/candidates -> RUN/matched."""

from __future__ import annotations

from wit.io import folders
from wit.match.job import match_folder


def run_step(ctx) -> dict:
    queries, candidates = ctx.inputs
    return match_folder(folders.join(queries, "queries.parquet"), candidates, ctx.output, backend=ctx.spec.match.backend,
                        **ctx.runner_kwargs())
