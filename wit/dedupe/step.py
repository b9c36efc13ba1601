"""Pipeline step `dedupe`: RUN/filtered -> RUN/deduped, against the eval index it builds in RUN/eval_index."""

from __future__ import annotations

from wit.dedupe.index import EvalIndex, make_embedder
from wit.dedupe.job import run_dedupe
from wit.io import folders

INDEX = "eval_index"


def run_step(ctx) -> dict:
    cfg = ctx.spec.dedupe
    (filtered,) = ctx.inputs
    index_dir = ctx.owned(INDEX)
    sets = dict(cfg.eval) if cfg.enabled else {}
    if sets and not folders.exists(folders.join(index_dir, "index.parquet")):
        EvalIndex.build(sets, crop_variants=cfg.crop_variants, rotation_variants=cfg.rotation_variants,
                        centre=cfg.centre_hash, dihedral_variants=cfg.dihedral_variants,
                        warp_variants=cfg.warp_variants, keypoints=cfg.keypoints, shuffled=cfg.shuffled,
                        embedder=make_embedder(cfg.model, cfg.checkpoint, cfg.embed_threshold)).save(index_dir)
    return run_dedupe(folders.expand(filtered, (".parquet",)), ctx.output, index_dir if sets else None, cfg,
                      **ctx.runner_kwargs())
