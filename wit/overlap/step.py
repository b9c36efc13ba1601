"""Pipeline step `overlap`: the CLIP §5 analysis of RUN/shards against the spec's eval sets."""

from __future__ import annotations

import logging
import os

from wit.io import folders
from wit.overlap.job import OverlapJob, run_overlap

CHECKPOINT = "checkpoints/epoch_latest.pt"
NO_EVAL_SETS = "no eval sets: overlap.eval is empty and the run has no world step"

log = logging.getLogger(__name__)


def run_step(ctx) -> dict:
    cfg = ctx.spec.overlap
    shards, trained = ctx.inputs
    if not cfg.eval:
        log.warning("overlap: SKIPPED, %s; set overlap.eval to analyse the overlap (run.json 'skipped')",
                    NO_EVAL_SETS)
        return {"skipped": {"overlap": NO_EVAL_SETS}}
    ckpt = folders.join(trained, CHECKPOINT)
    has_model = os.path.exists(ckpt)
    job = OverlapJob(
        shards=[shards], eval_sets=dict(cfg.eval), out=ctx.output, thresholds=_thresholds(ctx.spec),
        default_threshold=_default_threshold(ctx.spec),
        model=ckpt if has_model else None, model_name=ctx.spec.train.model if has_model else None,
        templates=cfg.templates, use_sidecar=cfg.use_sidecar, pairs=cfg.pairs, **_detector(ctx.spec),
        **_copy_detector(ctx.spec),
    )
    result = run_overlap(job, **ctx.runner_kwargs())
    if not has_model:
        reason = f"no trained checkpoint at {ckpt}: accuracy on overlapping vs clean examples not measured"
        log.warning("overlap: %s", reason)
        result["skipped"] = {"overlap_accuracy": reason}
    return result


def _default_threshold(spec) -> int:
    """overlap.default_threshold, else the dedupe step's pHash threshold, so the overlap split and the
    dedupe agree on what a copy is (both wit.overlap.detector.DEFAULT_THRESHOLD unless the spec changes one)."""
    if spec.overlap.default_threshold is not None:
        return spec.overlap.default_threshold
    return spec.dedupe.phash_threshold


def _thresholds(spec) -> dict[str, int]:
    """overlap.thresholds, and for eval sets it does not name, dedupe.thresholds (same agreement)."""
    o = spec.overlap
    return {**{s: t for s, t in spec.dedupe.thresholds.items() if s in o.eval}, **o.thresholds}


def _detector(spec) -> dict:
    """The learned copy detector of the overlap split: overlap's own keys, else dedupe's, so both steps
    call the same images copies."""
    o, d = spec.overlap, spec.dedupe
    ckpt = o.checkpoint or d.checkpoint
    if not ckpt:
        return {}
    same = not o.checkpoint or o.checkpoint == d.checkpoint
    return {"detector": ckpt, "detector_model": o.model or (d.model if same else None),
            "embed_threshold": o.embed_threshold if o.embed_threshold is not None else
            (d.embed_threshold if same else None)}


def _copy_detector(spec) -> dict:
    """Dedupe's copy detector settings (its eval index rows, mirrors, centre region), so the overlap split
    counts as copies what the dedupe step removes; ``overlap.copy_detector: false`` gives the pHash alone."""
    d = spec.dedupe
    if not spec.overlap.copy_detector:
        return {"variant_rows": False}
    return {"variant_rows": True, "crop_variants": d.crop_variants, "rotation_variants": d.rotation_variants,
            "centre": d.centre_hash, "turns": d.dihedral_variants, "warps": d.warp_variants,
            "keypoints": d.keypoints, "shuffled": d.shuffled,
            "match_flips": d.match_flips}
