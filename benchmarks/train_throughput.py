"""Training samples/s fed from webdataset shards vs the same loop fed in-memory tensors.

The ratio is the cost of the data pipeline (goal >= 0.9); the loader alone should deliver
>= 3x what training consumes. Shards default to rendered shape images (72 px JPEGs, about the
size the demo's shard stage writes); pass --shards to measure real ones.

Runs are interleaved (shards, memory, x --repeats); medians, their ratio and the per-pair ratios
are printed with the load average, since other jobs on a shared machine slow single runs.

    .venv/bin/python benchmarks/train_throughput.py [--device cuda --loader-workers 4] [--model wit-vit-tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from itertools import islice, repeat
from pathlib import Path

import torch

from wit.train import synthetic
from wit.train.data import LoaderConfig, list_shards, make_loader
from wit.train.loop import TrainJob, train_worker
from wit.train.model import create


def _rate(out: Path, skip: int) -> float:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["samples_per_s"] for r in rows[skip:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="wit-vit-tiny")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40, help="per run; the first window is warm-up")
    ap.add_argument("--window", type=int, default=5, help="steps per timing window")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; medians are reported")
    ap.add_argument("--loader-workers", type=int, default=1, help="more on a GPU, where steps are far shorter")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--shards", default=None, help="folder of .tar shards (default: rendered shapes)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wit-train-bench-"))
    shards = list_shards(args.shards) if args.shards else synthetic.write_shards(
        tmp / "shards", n_shards=8, per_shard=256, size=72)
    job = TrainJob(tuple(shards), "", model=args.model, steps=args.steps, batch_size=args.batch_size, warmup=5,
                   loader_workers=args.loader_workers, log_every=args.window, checkpoint_every=10**9,
                   device=args.device, precision=args.precision)
    bundle = create(args.model)
    size, ctx = bundle.image_size, bundle.model.context_length
    fake = {"image": torch.randint(0, 256, (args.batch_size, 3, size, size), dtype=torch.uint8),
            "text": torch.randint(1, 49407, (args.batch_size, ctx)), "worker": 0, "cursor": 0, "bad": 0}
    if args.device == "cuda":
        fake = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in fake.items()}

    # Interleaved (shards, memory, shards, memory, ...) so drifting load from other jobs hits both alike.
    load_before = os.getloadavg()
    rates: dict[str, list[float]] = {"shards": [], "memory": []}
    for r in range(args.repeats):
        for name, batches in (("shards", None), ("memory", repeat(fake))):
            out = tmp / f"{name}_{r}"
            train_worker(_with(job, out=str(out)), batches=batches)
            rates[name].append(_rate(out, skip=1))
    train_rate = statistics.median(rates["shards"])
    memory_rate = statistics.median(rates["memory"])

    cfg = LoaderConfig(tuple(shards), args.batch_size, args.loader_workers, shuffle_buffer=1000, image_size=size)
    it = iter(make_loader(cfg, bundle.tokenizer))
    next(it)
    n = max(20, args.steps)
    t0 = time.perf_counter()
    for _ in islice(it, n):
        pass
    loader_rate = n * args.batch_size / (time.perf_counter() - t0)
    del it

    report = {
        "model": args.model, "batch_size": args.batch_size, "device": args.device,
        "loader_workers": args.loader_workers, "torch_threads": torch.get_num_threads(),
        "train_from_shards_samples_per_s": round(train_rate, 1),
        "train_in_memory_samples_per_s": round(memory_rate, 1),
        "ratio_shards_vs_memory": round(train_rate / memory_rate, 3),
        "loader_alone_samples_per_s": round(loader_rate, 1),
        "ratio_loader_vs_training": round(loader_rate / train_rate, 2),
    }
    # Other jobs on a shared machine slow single runs; the best and the per-pair ratios show how much.
    report["ratio_best_vs_best"] = round(max(rates["shards"]) / max(rates["memory"]), 3)
    report["ratio_per_pair"] = [round(a / b, 3) for a, b in zip(rates["shards"], rates["memory"])]
    report["runs"] = {k: [round(v, 1) for v in vs] for k, vs in rates.items()}
    report["load_average_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(report, indent=2))


def _with(job: TrainJob, **kw) -> TrainJob:
    from dataclasses import replace

    return replace(job, **kw)


if __name__ == "__main__":
    main()
