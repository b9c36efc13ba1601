"""Pipeline step `train`: train on RUN/shards into RUN/train and evaluate on the world's eval sets."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
NO_EVAL_SETS = "no eval sets: zero-shot evaluation uses the world step's, and the run has none"


def run_step(ctx) -> dict:
    """Train (resuming a killed run's checkpoint), evaluate zero-shot; return loss, steps and top-1 per set."""
    from wit.train.data import list_shards
    from wit.train.loop import TrainJob, train

    cfg = ctx.spec.train
    world = ctx.state.get("world")
    eval_sets = dict(getattr(world, "eval_sets", None) or {})
    job = TrainJob.from_config(cfg, list_shards(ctx.folder("shard")), ctx.folder("train"), eval_sets, resume=True)
    # train.ray_workers = N > 0 trains with Ray Train on N workers (the runner's cluster); 0 trains in this
    # process, which on one small machine is faster than splitting its cores between workers.
    ray_workers = cfg.ray_workers
    summary = train(job, ray_workers=ray_workers, address=ctx.address)
    skipped = {} if eval_sets else {"zeroshot": NO_EVAL_SETS}
    if skipped:
        log.warning("train: zero-shot evaluation SKIPPED, %s (run.json 'skipped')", NO_EVAL_SETS)
    return {
        "steps": summary["steps"],
        "final_loss": summary["final_loss"],
        "bad_samples": summary.get("bad_samples", 0),
        "zeroshot_top1": {name: r["top1"] for name, r in summary["zeroshot"].items()},
        **({"skipped": skipped} if skipped else {}),
    }
