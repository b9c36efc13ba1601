"""Pipeline step `overlap`: the CLIP §5 analysis of RUN/shards against the spec's eval sets."""

from __future__ import annotations

import os

from wit.io import folders
from wit.overlap.job import OverlapJob, run_overlap
from wit.overlap.detector import DEFAULT_THRESHOLD

CHECKPOINT = "checkpoints/epoch_latest.pt"


def run_step(ctx) -> dict:
    cfg = ctx.spec.overlap
    shards, trained = ctx.inputs
    if not cfg.eval:
        raise ValueError("overlap: no eval sets (set overlap.eval, or run the world step)")
    ckpt = folders.join(trained, CHECKPOINT)
    has_model = os.path.exists(ckpt)
    job = OverlapJob(
        shards=[shards], eval_sets=dict(cfg.eval), out=ctx.output, thresholds=dict(cfg.thresholds),
        default_threshold=DEFAULT_THRESHOLD if cfg.default_threshold is None else cfg.default_threshold,
        model=ckpt if has_model else None, model_name=ctx.spec.train.model if has_model else None,
        templates=cfg.templates, use_sidecar=cfg.use_sidecar, pairs=cfg.pairs,
    )
    return run_overlap(job, **ctx.runner_kwargs())
