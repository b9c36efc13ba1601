"""Pipeline step `overlap`: the CLIP §5 analysis of RUN/shards against the run's eval sets."""

from __future__ import annotations

import logging
import os

from wit.overlap.analysis import OverlapJob, run_overlap
from wit.overlap.detector import DEFAULT_THRESHOLD

CHECKPOINT = "checkpoints/epoch_latest.pt"
NO_EVAL_SETS = "no eval sets: overlap.eval is empty and the run has no world step"

log = logging.getLogger(__name__)


def run_step(ctx) -> dict:
    cfg = ctx.spec.overlap
    eval_sets = dict(cfg.eval)
    if not eval_sets and ctx.state.get("world") is not None:
        eval_sets = dict(ctx.state["world"].eval_sets)
    if not eval_sets:
        log.warning("overlap: SKIPPED, %s; set overlap.eval to analyse the overlap (run.json 'skipped')",
                    NO_EVAL_SETS)
        return {"skipped": {"overlap": NO_EVAL_SETS}}
    ckpt = ctx.path("train", CHECKPOINT)
    has_model = os.path.exists(ckpt)
    job = OverlapJob(
        shards=[ctx.folder("shard")], eval_sets=eval_sets, out=ctx.folder("overlap"),
        thresholds=dict(cfg.thresholds),
        default_threshold=DEFAULT_THRESHOLD if cfg.default_threshold is None else cfg.default_threshold,
        model=ckpt if has_model else None, model_name=ctx.spec.train.model if has_model else None,
        templates=cfg.templates, use_sidecar=cfg.use_sidecar, pairs=cfg.pairs,
    )
    result = run_overlap(job, **ctx.runner_kwargs())
    if not has_model:
        reason = f"no trained checkpoint at {ckpt}: accuracy on overlapping vs clean examples not measured"
        log.warning("overlap: %s", reason)
        result["skipped"] = {"overlap_accuracy": reason}
    return result
