"""The filter job: a folder of downloaded images -> the ones that pass; `wit filter` and the step call it."""

from __future__ import annotations

from wit.config import FilterConfig
from wit.filter.stage import FilterStage
from wit.runners import run_stage


def hook_status(cfg: FilterConfig) -> list[str]:
    """One line per model hook: on (and with which model) or off (and why)."""
    if cfg.clip_model:
        return [f"clip_score: on ({cfg.clip_model})", f"nsfw: {'on' if cfg.nsfw_model else 'off'}"]
    from wit.filter.hooks import Hooks

    return Hooks(cfg).status()


def run_filter(cfg: FilterConfig, inputs: list[str], out: str, **runner_kwargs) -> dict:
    """Filter every input part into ``out``; the report lists the hooks' status under ``hooks``."""
    report = run_stage(FilterStage(cfg=cfg), inputs, out, **runner_kwargs).as_dict()
    report["hooks"] = hook_status(cfg)
    return report
