"""Pipeline step `download`: the balanced URL list -> RUN/downloaded."""

from __future__ import annotations

from wit.download.stage import DownloadStage
from wit.io import folders
from wit.runners import run_stage


def run_step(ctx) -> dict:
    stage = DownloadStage(cfg=ctx.spec.download)
    inputs = folders.expand(ctx.folder("balance"), (".parquet",))
    return run_stage(stage, inputs, ctx.folder("download"), **ctx.runner_kwargs()).as_dict()
