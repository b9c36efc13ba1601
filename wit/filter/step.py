"""Pipeline step `filter`: RUN/downloaded -> RUN/filtered."""

from __future__ import annotations

from wit.filter.stage import FilterStage
from wit.io import folders
from wit.runners import run_stage


def run_step(ctx) -> dict:
    from wit.filter.hooks import Hooks

    stage = FilterStage(cfg=ctx.spec.filter)
    inputs = folders.expand(ctx.folder("download"), (".parquet",))
    report = run_stage(stage, inputs, ctx.folder("filter"), **ctx.runner_kwargs()).as_dict()
    report["hooks"] = Hooks(ctx.spec.filter).status() if not ctx.spec.filter.clip_model else [
        f"clip_score: on ({ctx.spec.filter.clip_model})", f"nsfw: {'on' if ctx.spec.filter.nsfw_model else 'off'}"]
    return report
