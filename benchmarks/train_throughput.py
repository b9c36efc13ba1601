"""Training samples/s fed from webdataset shards vs the same loop fed in-memory tensors.

The ratio is the cost of the data pipeline (goal >= 0.9); the loader alone should deliver
>= 3x what training consumes. Shards default to rendered shape images (72 px JPEGs, about the
size the demo's shard stage writes); pass --shards to measure real ones.

    .venv/bin/python benchmarks/train_throughput.py [--device cuda] [--model wit-vit-tiny]
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--loader-workers", type=int, default=1)
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

    results = {}
    for name, batches in (("shards", None), ("memory", repeat(fake)), ("shards_2", None), ("memory_2", repeat(fake))):
        out = tmp / name
        train_worker(_with(job, out=str(out)), batches=batches)
        results[name] = _rate(out, skip=1)
    train_rate = statistics.mean([results["shards"], results["shards_2"]])
    memory_rate = statistics.mean([results["memory"], results["memory_2"]])

    cfg = LoaderConfig(tuple(shards), args.batch_size, args.loader_workers, shuffle_buffer=1000, draft_size=size)
    it = iter(make_loader(cfg, bundle.train_transform, bundle.tokenizer))
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
    report["runs"] = {k: round(v, 1) for k, v in results.items()}
    print(json.dumps(report, indent=2))


def _with(job: TrainJob, **kw) -> TrainJob:
    from dataclasses import replace

    return replace(job, **kw)


if __name__ == "__main__":
    main()
