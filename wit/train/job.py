"""The train job: train (in this process, or on Ray Train), plot the loss, evaluate zero-shot.

`wit train` and the pipeline step call ``train``; the loop itself is wit/train/loop.py, and
wit/train/ray_train.py runs that loop on Ray Train workers (neither imports this module).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from wit.train.loop import SUMMARY, TrainJob, evaluate_sets, train_worker


def train(job: TrainJob, ray_workers: int = 0, address: str | None = None) -> dict:
    """Train (in-process, or on ``ray_workers`` Ray Train workers), then zero-shot eval and the loss plot."""
    if ray_workers > 0:
        from wit.train.ray_train import fit

        summary = fit(job, ray_workers, address)
    else:
        summary = train_worker(job)
    out = Path(job.out)
    from wit.train.plots import plot_loss

    plot_loss(out / "metrics.jsonl", out / "loss.png")
    if math.isnan(summary.get("final_loss", math.nan)) and (out / "metrics.jsonl").exists():
        lines = (out / "metrics.jsonl").read_text().splitlines()
        summary["final_loss"] = json.loads(lines[-1])["loss"] if lines else math.nan
    summary["zeroshot"] = evaluate_sets(job)
    summary["checkpoint"] = job.checkpoint_path
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
