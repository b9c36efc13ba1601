"""Pipeline step `match`: RUN/candidates + RUN/queries/queries.parquet -> RUN/matched."""

from __future__ import annotations

from wit.io import folders
from wit.match.run import match_folder


def run_step(ctx) -> dict:
    return match_folder(folders.join(ctx.folder("queries"), "queries.parquet"), ctx.folder("candidates"),
                        ctx.folder("match"), backend=ctx.spec.match.backend, **ctx.runner_kwargs())
