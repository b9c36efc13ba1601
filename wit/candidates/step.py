"""Pipeline step `candidates`: the spec's crawl files or URL lists -> RUN/candidates."""

from __future__ import annotations

from wit.candidates.job import extract


def run_step(ctx) -> dict:
    cfg = ctx.spec.candidates
    if not cfg.inputs:
        raise ValueError("candidates: no inputs in the spec (candidates.inputs) and no world step to provide them")
    return extract(cfg, cfg.inputs, ctx.output, **ctx.runner_kwargs())
