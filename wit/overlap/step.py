"""Pipeline step `overlap`: the CLIP §5 analysis of RUN/shards against the run's eval sets."""

from __future__ import annotations

import os

from wit.overlap.analysis import OverlapJob, run_overlap

CHECKPOINT = "checkpoints/epoch_latest.pt"


def run_step(ctx) -> dict:
    cfg = ctx.spec.overlap
    eval_sets = dict(cfg.eval)
    if not eval_sets and ctx.state.get("world") is not None:
        eval_sets = dict(ctx.state["world"].eval_sets)
    if not eval_sets:
        raise ValueError("overlap: no eval sets (set overlap.eval, or run the world step)")
    ckpt = ctx.path("train", CHECKPOINT)
    has_model = os.path.exists(ckpt)
    job = OverlapJob(
        shards=[ctx.folder("shard")], eval_sets=eval_sets, out=ctx.folder("overlap"),
        thresholds=dict(cfg.thresholds),
        default_threshold=_default_threshold(ctx.spec),
        model=ckpt if has_model else None, model_name=ctx.spec.train.model if has_model else None,
        templates=cfg.templates, use_sidecar=cfg.use_sidecar, pairs=cfg.pairs,
    )
    return run_overlap(job, **ctx.runner_kwargs())


def _default_threshold(spec) -> int:
    """overlap.default_threshold, else the dedupe step's pHash threshold, so the overlap split and the
    dedupe agree on what a copy is (both wit.overlap.detector.DEFAULT_THRESHOLD unless the spec changes one)."""
    if spec.overlap.default_threshold is not None:
        return spec.overlap.default_threshold
    return spec.dedupe.phash_threshold
