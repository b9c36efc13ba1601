"""Pipeline step `download`: the balanced URL list -> RUN/downloaded."""

from __future__ import annotations

from wit.download.job import run_download
from wit.download.stage import DownloadStage
from wit.io import folders


def run_step(ctx) -> dict:
    (urls,) = ctx.inputs
    return run_download(DownloadStage(cfg=ctx.spec.download), folders.expand(urls, (".parquet",)), ctx.output,
                        **ctx.runner_kwargs())
