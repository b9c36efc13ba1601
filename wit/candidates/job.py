"""The candidates job: crawl files or URL lists -> (image URL, alt text) parts; `wit candidates` and the step call it."""

from __future__ import annotations

from wit.candidates.stage import CandidatesStage
from wit.config import CandidatesConfig
from wit.io import folders
from wit.runners import run_stage


def extract(cfg: CandidatesConfig, inputs: list[str] | str, out: str, **runner_kwargs) -> dict:
    """One task per input file (paths, folders or globs) into ``out``; return the report."""
    return run_stage(CandidatesStage.from_config(cfg), folders.expand(inputs), out, **runner_kwargs).as_dict()
