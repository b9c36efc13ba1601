"""Peak memory of the query builder's count merge at 1x and 10x input (issue #17, item 6).

The input is a generated multistream dump: the real sample (../shared/data/wikipedia) repeated
``copies`` times with distinct page titles, 20 pages per bz2 stream. Counting runs (local runner)
in one process, the merge (``merge_unigrams`` + ``bigram_pmi``) in a fresh one whose peak RSS is
reported, once folding spills 16 at a time (the merge as built) and once reading every spill of a
bucket at once (the merge before). 10x the input means 10x the counting tasks and spills over the
same vocabulary, which is what made the old merge grow.

    .venv/bin/python benchmarks/queries_merge_memory.py [--copies 1,10] [--task-mb 0.25]
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / ".." / "shared" / "data" / "wikipedia" / "enwiki-pages-articles-206-pages.xml.bz2"


def make_dump(sample: Path, out: Path, copies: int, pages_per_stream: int = 20) -> None:
    xml = bz2.decompress(sample.read_bytes()).decode()
    head, body = xml.split("<page>", 1)
    pages = ["<page>" + p for p in ("<page>" + body).split("<page>")[1:]]
    pages[-1] = pages[-1].rsplit("</mediawiki>", 1)[0]
    with open(out, "wb") as f:
        f.write(bz2.compress(head.encode()))
        block = []
        for k in range(copies):
            for p in pages:
                block.append(re.sub(r"<title>(.*?)</title>", lambda m: f"<title>{m.group(1)} (copy {k})</title>", p,
                                    count=1) if k else p)
                if len(block) == pages_per_stream:
                    f.write(bz2.compress("".join(block).encode()))
                    block = []
        if block:
            f.write(bz2.compress("".join(block).encode()))
        f.write(bz2.compress(b"</mediawiki>\n"))


def count(dump: Path, out: Path, task_mb: float) -> dict:
    from wit.queries import counts, wikipedia
    from wit.runners import run_stage

    slices = wikipedia.plan_slices(str(dump), int(task_mb * (1 << 20)))
    stage = counts.CountStage(spill_dir=str(out), buckets=16)
    t0 = time.perf_counter()
    rep = run_stage(stage, [s.encode() for s in slices], str(out), progress=False)
    return {"tasks": len(slices), "pages": rep.n_in, "seconds": time.perf_counter() - t0,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def merge(spill: Path, fold: int) -> dict:
    from wit.queries import counts

    counts.FOLD = fold
    t0 = time.perf_counter()
    uni = counts.merge_unigrams(str(spill))
    bi = counts.bigram_pmi(str(spill), uni, 3.0, 3)
    return {"unigrams": uni.num_rows, "bigrams": bi.num_rows, "seconds": time.perf_counter() - t0,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _child(*argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    p = subprocess.run([sys.executable, __file__, "--child", *argv], env=env, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", default="1,10")
    ap.add_argument("--task-mb", type=float, default=0.25)
    ap.add_argument("--work", default=None)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(count(Path(rest[0]), Path(rest[1]), float(rest[2])) if kind == "count"
                         else merge(Path(rest[0]), int(rest[1]))))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="wit-qmerge-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in [int(c) for c in args.copies.split(",")]:
        dump = work / f"dump-x{k}.xml.bz2"
        make_dump(SAMPLE.resolve(), dump, k)
        c = _child("count", str(dump), str(work / f"spill-x{k}"), str(args.task_mb))
        folded = _child("merge", str(work / f"spill-x{k}"), "16")
        whole = _child("merge", str(work / f"spill-x{k}"), "1000000000")
        rows.append((k, c, folded, whole))
        print(f"x{k}: dump {dump.stat().st_size / 2**20:.1f} MB bz2, {c['pages']} pages, {c['tasks']} counting tasks "
              f"(peak RSS {c['rss'] / 2**20:.0f} MiB, {c['seconds']:.0f} s); merge peak RSS folded "
              f"{folded['rss'] / 2**20:.0f} MiB ({folded['seconds']:.1f} s), all spills at once "
              f"{whole['rss'] / 2**20:.0f} MiB ({whole['seconds']:.1f} s); {folded['unigrams']} unigrams, "
              f"{folded['bigrams']} bigrams", flush=True)
        assert (folded["unigrams"], folded["bigrams"]) == (whole["unigrams"], whole["bigrams"])
    (a, ca, fa, wa), (b, cb, fb, wb) = rows[0], rows[-1]
    print(f"x{b} / x{a}: merge peak RSS folded {fb['rss'] / fa['rss']:.2f}x, all at once {wb['rss'] / wa['rss']:.2f}x; "
          f"counting peak RSS {cb['rss'] / ca['rss']:.2f}x")


if __name__ == "__main__":
    main()
