"""Pipeline step `dedupe`: RUN/filtered -> RUN/deduped, against the eval index in RUN/eval_index."""

from __future__ import annotations

from wit.dedupe.index import EvalIndex, make_embedder
from wit.dedupe.stage import run_dedupe
from wit.io import folders


def eval_sets(ctx) -> dict[str, str]:
    """The spec's eval sets, or the mini-web's when the spec names none."""
    if ctx.spec.dedupe.eval:
        return dict(ctx.spec.dedupe.eval)
    world = ctx.state.get("world")
    return dict(world.eval_sets) if world is not None else {}


def run_step(ctx) -> dict:
    cfg = ctx.spec.dedupe
    inputs = folders.expand(ctx.folder("filter"), (".parquet",))
    index_dir = ctx.path("eval_index")
    sets = eval_sets(ctx) if cfg.enabled else {}
    if sets and not folders.exists(folders.join(index_dir, "index.parquet")):
        EvalIndex.build(sets, crop_variants=cfg.crop_variants, rotation_variants=cfg.rotation_variants,
                        centre=cfg.centre_hash, dihedral_variants=cfg.dihedral_variants,
                        embedder=make_embedder(cfg.model, cfg.checkpoint, cfg.embed_threshold)).save(index_dir)
    return run_dedupe(inputs, ctx.folder("dedupe"), index_dir if sets else None, cfg, **ctx.runner_kwargs())
