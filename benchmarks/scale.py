"""Scaling on Ray: candidates -> match -> balance -> download -> filter -> dedupe -> balance_final -> shard.

At each size (generated candidates) the pipeline runs on a fresh local Ray in its own process, so
the driver's peak memory is its own; a sampler records the driver's and every Ray worker's RSS and
private memory (``RssAnon``: RSS also counts the pages of the shared object store a process touched,
which fill up to ``--object-store-mb`` whatever the input) every 0.2 s, and the object store's
spilled bytes are read at the end. The candidates point at the mini-web's images
(served on loopback) with distinct captions over the world's concepts; the balance cap t grows with
the size so the downloaded share stays the same (``--download-share``). Files hold a fixed number of
rows (``--rows-per-file``), so per-task work is the same at every size.

    .venv/bin/python benchmarks/scale.py [--sizes 1000000,4000000,16000000] [--work DIR]

Goals (issue #17), largest size against the smallest: seconds per candidate <= 1.1x, every
process's peak memory <= 1.2x.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILLER = ["photo", "of", "a", "the", "small", "red", "on", "with", "view", "old", "near", "my"]


def generate_candidates(world_root: Path, base_url: str, out: Path, n: int, rows_per_file: int, seed: int) -> list[str]:
    """``n`` (url, text) rows in Parquet files of ``rows_per_file``: world images, distinct captions."""
    import numpy as np
    import pyarrow as pa

    from wit.io import folders
    from wit.world.world import World

    images = World.load(world_root).images
    paths = [p for p, e in sorted(images.items()) if p.startswith("/img/") and e.get("concepts")]
    concepts = [images[p]["concepts"][0] for p in paths]
    rng = np.random.default_rng(seed)
    files = []
    for f, a in enumerate(range(0, n, rows_per_file)):
        m = min(rows_per_file, n - a)
        img = rng.integers(0, len(paths), m)
        w = rng.integers(0, len(FILLER), (m, 2))
        texts = [f"{FILLER[x]} {concepts[i]} {FILLER[y]} {a + k}" for k, (i, (x, y)) in enumerate(zip(img, w))]
        url = [base_url + paths[i] for i in img]
        files.append(str(out / f"cand-{f:05d}.parquet"))
        folders.write_parquet(files[-1], pa.table({"url": url, "text": texts}))
    return files


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, private) bytes of a process: private is ``RssAnon`` (its own heap), RSS also counts the
    pages of Ray's shared object store it has touched (``RssShmem``), which is bounded by the store's
    size, not by this process."""
    rss = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    return rss, anon


class Sampler(threading.Thread):
    """Peak RSS and private memory of this driver and of every Ray worker process (``ray::`` in the
    process title), sampled every ``period`` s."""

    def __init__(self, period: float = 0.2):
        super().__init__(daemon=True)
        self.period, self.stop = period, threading.Event()
        self.peak: dict[int, tuple[int, str]] = {}  # worker pid -> (peak RSS, title)
        self.private: dict[int, tuple[int, str]] = {}  # worker pid -> (peak private, title)
        self.driver: list[tuple[float, int, int]] = []  # (time, this process's RSS, private)
        self.workers: list[tuple[float, int]] = []  # (time, the largest worker private memory then)
        self._now: list[tuple[int, str]] = []

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            # this driver's own cluster only: its raylet and workers are descendants of this process
            for p in me.children(recursive=True):
                try:
                    cmd = " ".join(p.cmdline())
                    rss, anon = _memory(p.pid)
                except (psutil.Error, OSError):
                    continue
                if not (cmd.startswith("ray::") or "default_worker.py" in cmd):
                    continue
                title = cmd.split()[0]
                if rss > self.peak.get(p.pid, (0, ""))[0]:
                    self.peak[p.pid] = (rss, title)
                if anon > self.private.get(p.pid, (0, ""))[0]:
                    self.private[p.pid] = (anon, title)
                self._now.append((anon, title))
            self.driver.append((time.perf_counter(), *_memory(os.getpid())))
            self.workers.append((self.driver[-1][0], max((a for a, _ in self._now), default=0)))
            self._now = []
            self.stop.wait(self.period)

    def by_step(self, t0: float, steps: list[tuple[str, float]], series: list[tuple[float, int]]) -> dict[str, int]:
        """The peak of ``series`` (time, bytes) within each step (steps run one after another from ``t0``)."""
        out, start = {}, t0
        for name, seconds in steps:
            end = start + (seconds or 0)
            out[name] = max((r for t, r in series if start <= t <= end), default=0)
            start = end
        out["after the steps"] = max((r for t, r in series if t > start), default=0)
        return out


def spilled_bytes() -> int:
    import ray
    from ray._private.internal_api import memory_summary

    s = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
    m = re.search(r"Spilled (\d+) MiB", s)
    return int(m.group(1)) * 2**20 if m else 0


def run_one(args: argparse.Namespace) -> dict:
    """One size in this process: the pipeline on a fresh local Ray; prints one JSON line."""
    import pyarrow as pa
    import ray

    from wit.config import RunSpec, load_model
    from wit.io import folders
    from wit.pipeline import RunContext, run_pipeline
    from wit.runners import settings
    from wit.runners.ray import ensure_ray

    cfg = json.loads(Path(args.one).read_text())
    run = Path(cfg["run"])
    folders.write_parquet(str(run / "queries" / "queries.parquet"), pa.table({
        "query_id": pa.array(range(len(cfg["entries"])), pa.int32()), "query": cfg["entries"],
        "source": ["bench"] * len(cfg["entries"]), "score": [0.0] * len(cfg["entries"])}))
    spec = load_model(RunSpec, {
        "name": "scale", "runner": "ray",
        "steps": ["candidates", "match", "balance", "download", "filter", "dedupe", "balance_final", "shard"],
        "candidates": {"inputs": cfg["files"], "format": "parquet"},
        "balance": {"t": cfg["t"], "oversample": 1.0},
        "download": {"image_size": 64, "timeout": 5.0, "retries": 0, "per_host_concurrency": 64, "threads": 32,
                     "allow_private_networks": True},  # the mini-web is on loopback
        "dedupe": {"enabled": False, "within_dataset": True, "within_threshold": 4},
        "balance_final": {"t": cfg["t"]},
        "shard": {"samples_per_shard": 1000},
        # reduce tasks of a fixed size at every size (the configured batch that bounds their memory)
        "ray": {"object_store_memory": args.object_store_mb * 2**20, "rows_per_partition": args.rows_per_partition,
                **({"malloc_arenas": None if args.malloc_arenas == 0 else args.malloc_arenas}
                   if args.malloc_arenas is not None else {})},
    })
    settings.from_spec(spec.ray)  # as `wit run` does: the spec's ray: section sizes the local Ray
    ensure_ray(num_cpus=os.cpu_count(), progress=False)
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    record = run_pipeline(RunContext(spec, str(run), runner="ray", progress=False))
    seconds = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    spill = spilled_bytes()
    ray.shutdown()
    steps = [(k, record["stages"][k].get("seconds")) for k in spec.steps if k in record["stages"]]
    worker = max(sampler.peak.values(), default=(0, ""))
    private = max(sampler.private.values(), default=(0, ""))
    return {"n": cfg["n"], "seconds": seconds, "driver_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "driver_private": max((a for _, _, a in sampler.driver), default=0),
            "worker_rss": worker[0], "worker": worker[1], "worker_private": private[0], "worker_p": private[1],
            "spilled": spill, "ledger_ok": record.get("ledger_ok"),
            "per_step": {k: v.get("seconds") for k, v in record["stages"].items()},
            "driver_by_step": {k: round(v / 2**20) for k, v in sampler.by_step(
                t0, steps, [(t, a) for t, _, a in sampler.driver]).items()},
            "worker_by_step": {k: round(v / 2**20) for k, v in sampler.by_step(t0, steps, sampler.workers).items()},
            "kept": {k: v.get("kept") for k, v in record["stages"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,4000000,16000000")
    ap.add_argument("--rows-per-file", type=int, default=250_000)
    ap.add_argument("--download-share", type=float, default=0.002, help="share of candidates kept by balance")
    ap.add_argument("--object-store-mb", type=int, default=1024)
    ap.add_argument("--rows-per-partition", type=int, default=250_000,
                    help="input rows per reduce task of the global shuffles (ray.rows_per_partition)")
    ap.add_argument("--malloc-arenas", type=int, default=None,
                    help="ray.malloc_arenas of the download actors (0: glibc's default; none: the spec's default, 2)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return

    from wit.world import WorldServer, generate

    work = Path(args.work or tempfile.mkdtemp(prefix="wit-scale-"))
    world = generate(work / "world", size="small", seed=0)
    server = WorldServer(work / "world").start()
    concepts = sorted({e["concepts"][0] for p, e in world.images.items() if p.startswith("/img/") and e.get("concepts")})
    rows = []
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            t0 = time.perf_counter()
            files = generate_candidates(work / "world", server.base_url, work / f"cand-{n}", n, args.rows_per_file, n)
            gen = time.perf_counter() - t0
            # metaclip keeps about entries x t pairs: t grows with n so the kept share stays the same
            t = max(1, round(args.download_share * n / len(concepts)))
            shutil.rmtree(work / f"run-{n}", ignore_errors=True)  # a fresh run: never resume an earlier one
            cfg = work / f"run-{n}.json"
            cfg.write_text(json.dumps({"n": n, "files": files, "run": str(work / f"run-{n}"), "t": t,
                                       "entries": concepts}))
            env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "TQDM_DISABLE": "1"}
            proc = subprocess.run([sys.executable, __file__, "--one", str(cfg),
                                   "--object-store-mb", str(args.object_store_mb),
                                   "--rows-per-partition", str(args.rows_per_partition),
                                   *(["--malloc-arenas", str(args.malloc_arenas)] if args.malloc_arenas is not None
                                     else [])],
                                  env=env, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"size {n} failed:\n{proc.stderr[-4000:]}")
            r = json.loads(line[-1][7:])
            rows.append(r)
            print(f"{n:>10,} candidates (t={t}, generated in {gen:.0f} s): {r['seconds']:.1f} s = "
                  f"{r['seconds'] / n * 1e6:.1f} s per million; spilled {r['spilled'] / 2**20:.0f} MiB; "
                  f"ledger ok {r['ledger_ok']}", flush=True)
            print(f"           peak RSS: driver {r['driver_rss'] / 2**20:.0f} MiB, largest worker "
                  f"{r['worker_rss'] / 2**20:.0f} MiB ({r['worker']}); peak private (RssAnon): driver "
                  f"{r['driver_private'] / 2**20:.0f} MiB, largest worker {r['worker_private'] / 2**20:.0f} MiB "
                  f"({r['worker_p']})", flush=True)
            print(f"           per step (s): {r['per_step']}", flush=True)
            print(f"           peak private memory by step (MiB): driver {r['driver_by_step']}", flush=True)
            print(f"           largest worker {r['worker_by_step']}", flush=True)
            print(f"           kept: {r['kept']}", flush=True)
    finally:
        server.stop()
    a, b = rows[0], rows[-1]
    print(f"ratios {b['n']:,} / {a['n']:,}: seconds per candidate "
          f"{(b['seconds'] / b['n']) / (a['seconds'] / a['n']):.2f}x (goal <= 1.1); peak private memory: driver "
          f"{b['driver_private'] / a['driver_private']:.2f}x, largest worker "
          f"{b['worker_private'] / a['worker_private']:.2f}x (goal <= 1.2); peak RSS with the object store's shared "
          f"pages: driver {b['driver_rss'] / a['driver_rss']:.2f}x, largest worker "
          f"{b['worker_rss'] / a['worker_rss']:.2f}x (bounded by --object-store-mb)")


if __name__ == "__main__":
    main()
