"""Pipeline step `filter`: RUN/downloaded -> RUN/filtered."""

from __future__ import annotations

from wit.filter.job import run_filter
from wit.io import folders


def run_step(ctx) -> dict:
    (downloaded,) = ctx.inputs
    return run_filter(ctx.spec.filter, folders.expand(downloaded, (".parquet",)), ctx.output, **ctx.runner_kwargs())
