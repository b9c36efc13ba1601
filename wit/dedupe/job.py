"""The dedupe job: describe (per part) -> near-duplicate pre-pass (global) -> drop (per part).

`wit dedupe` and the pipeline step call ``run_dedupe``; each of its jobs resumes on its own
(completion markers, a cached pre-pass file).
"""

from __future__ import annotations

import logging

from wit.dedupe.describe import DescribeStage, descriptors_dir, matched_by
from wit.distributed.near_dups import near_duplicates
from wit.dedupe.stage import DedupeStage
from wit.runners import run_stage

log = logging.getLogger(__name__)


def run_dedupe(inputs: list[str], out: str, index_dir: str | None, cfg, **runner_kwargs) -> dict:
    """The three jobs in order; each resumes on its own (markers, a cached pre-pass file)."""
    ledger_dir = runner_kwargs.pop("ledger_dir", None)
    describe = DescribeStage(index_dir=index_dir, threshold=cfg.phash_threshold, thresholds=dict(cfg.thresholds),
                             match_flips=cfg.match_flips, centre_hash=cfg.centre_hash,
                             embed_threshold=cfg.embed_threshold, embed_thresholds=dict(cfg.embed_thresholds),
                             embed_batch=cfg.embed_batch)
    d = run_stage(describe, inputs, descriptors_dir(out), ledger_dir=None, **runner_kwargs)
    by = matched_by(out)
    n_near = near_duplicates(out, cfg.within_threshold, **runner_kwargs) if cfg.within_dataset else 0
    rep = run_stage(DedupeStage(out=out), inputs, out, ledger_dir=ledger_dir, **runner_kwargs).as_dict()
    rep["describe_seconds"] = round(d.seconds, 3)
    rep["near_duplicates"] = n_near
    rep["eval_matched_by"] = by
    log.info("dedupe: eval copies by descriptor %s", by)
    return rep
