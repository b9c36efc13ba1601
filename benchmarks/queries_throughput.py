"""Query-builder counting throughput: MB/s of uncompressed dump XML per core vs plain bz2.

Runs, on one core and in one process, (a) plain bz2 decompression of the dump and (b) the
counting stage over the same dump (decompress + page parse + wikitext clean + unigram/bigram
count + spill), and prints both rates and their ratio (goal: counting <= 2x decompression).
Usage: .venv/bin/python benchmarks/queries_throughput.py [DUMP.xml.bz2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import bz2
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / ".." / "shared" / "data" / "wikipedia" / "enwiki-pages-articles-206-pages.xml.bz2"


def _decompress(path: Path) -> int:
    dec, n = bz2.BZ2Decompressor(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += len(dec.decompress(chunk))
    return n


def _count(path: Path) -> tuple[float, float]:
    from wit.queries import counts, wikipedia
    from wit.runners import run_stage

    with tempfile.TemporaryDirectory() as tmp:
        stage = counts.CountStage(spill_dir=tmp, buckets=16)
        t0 = time.perf_counter()
        run_stage(stage, [s.encode() for s in wikipedia.plan_slices(str(path))], tmp, progress=False)
        t1 = time.perf_counter()
        uni = counts.merge_unigrams(tmp)
        counts.bigram_pmi(tmp, uni, 30.0)
        return t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dump", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = Path(args.dump)
    size = _decompress(path)
    dec_s, count_s, merge_s = [], [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        _decompress(path)
        dec_s.append(time.perf_counter() - t)
        c, m = _count(path)
        count_s.append(c), merge_s.append(m)
    mb = size / 1e6
    dec, cnt, mrg = statistics.median(dec_s), statistics.median(count_s), statistics.median(merge_s)
    result = {
        "dump": path.name,
        "uncompressed_mb": round(mb, 2),
        "bz2_decompress_mb_s_per_core": round(mb / dec, 2),
        "count_mb_s_per_core": round(mb / cnt, 2),
        "count_over_decompress": round(cnt / dec, 2),
        "merge_seconds": round(mrg, 3),
        "goal_count_over_decompress": 2.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
