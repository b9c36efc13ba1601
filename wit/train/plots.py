"""The loss curve of a run, drawn from its metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


def plot_loss(metrics_path: str | Path, out_path: str | Path) -> bool:
    """Write a loss-vs-step PNG; False when there are no metrics to plot."""
    metrics_path = Path(metrics_path)
    if not metrics_path.exists():
        return False
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker=".", lw=1, color="#27a",
            label=f"{len(rows)} logged step{'s' if len(rows) != 1 else ''}; last {rows[-1]['loss']:.3f}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel("contrastive (CLIP) loss")
    ax.set_title("Training loss", fontsize=11)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)
    return True
