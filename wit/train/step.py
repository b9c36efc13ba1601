"""Pipeline step `train`: train on RUN/shards into RUN/train and evaluate zero-shot on the spec's eval sets."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
NO_EVAL_SETS = "no eval sets: zero-shot evaluation uses the world step's, and the run has none"


def run_step(ctx) -> dict:
    """Train (resuming a killed run's checkpoint), evaluate zero-shot; return loss, steps and top-1 per set."""
    from wit.train.data import list_shards
    from wit.train.job import train
    from wit.train.loop import TrainJob

    cfg = ctx.spec.train
    (shards,) = ctx.inputs
    job = TrainJob.from_config(cfg, list_shards(shards), ctx.output, dict(cfg.eval), resume=True)
    # train.ray_workers = N > 0 trains with Ray Train on N workers (the runner's cluster); 0 trains in this
    # process, which on one small machine is faster than splitting its cores between workers.
    summary = train(job, ray_workers=cfg.ray_workers, address=ctx.address)
    skipped = {} if cfg.eval else {"zeroshot": NO_EVAL_SETS}
    if skipped:
        log.warning("train: zero-shot evaluation SKIPPED, %s (run.json 'skipped')", NO_EVAL_SETS)
    return {
        "steps": summary["steps"],
        "final_loss": summary["final_loss"],
        "bad_samples": summary.get("bad_samples", 0),
        "zeroshot_top1": {name: r["top1"] for name, r in summary["zeroshot"].items()},
        **({"skipped": skipped} if skipped else {}),
    }
