"""Pipeline step `candidates`: crawl files or URL lists -> RUN/candidates."""

from __future__ import annotations

from wit.candidates.stage import CandidatesStage
from wit.io import folders
from wit.runners import run_stage


def step_inputs(ctx) -> tuple[list[str], str]:
    """The input files and their format: the spec's inputs, else the generated world's WAT files."""
    cfg = ctx.spec.candidates
    if cfg.inputs:
        return folders.expand(cfg.inputs), cfg.format
    world = ctx.state.get("world")
    if world is None:
        raise ValueError("candidates: no inputs in the spec and no generated world in this run")
    wat = world.wat
    return folders.expand([str(p) for p in wat] if isinstance(wat, (list, tuple)) else str(wat)), "wat"


def run_step(ctx) -> dict:
    inputs, fmt = step_inputs(ctx)
    cfg = ctx.spec.candidates
    stage = CandidatesStage.from_config(cfg)
    stage.format = fmt
    return run_stage(stage, inputs, ctx.folder("candidates"), **ctx.runner_kwargs()).as_dict()
