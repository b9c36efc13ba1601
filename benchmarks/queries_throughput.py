"""Query-builder counting throughput: MB/s of uncompressed dump XML per core vs plain bz2.

Runs, on one core and in one process, (a) plain bz2 decompression of the dump with the stdlib's
bz2 (libbz2: the floor the goal is set against), (b) the same with indexed_bzip2 on one thread
(the decoder the stage uses), and (c) the counting stage over the same dump (decompress + page
parse + wikitext clean + unigram/bigram count + spill), interleaved, and prints the rates and the
ratios (goal: counting <= 1.5x libbz2's decompression), in wall-clock and in CPU seconds of this
process (steadier on a shared machine), plus the merge (sum of spills + PMI) that follows counting.
``cpu_count_over_wit_decoder`` is the stage's own overhead above the decoder it uses.
Usage: .venv/bin/python benchmarks/queries_throughput.py [DUMP.xml.bz2] [--repeat 3] [--batch-rows 1024]
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / ".." / "shared" / "data" / "wikipedia" / "enwiki-pages-articles-206-pages.xml.bz2"


def _timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - w, time.process_time() - c, out


def _decompress(path: Path) -> int:
    dec, n = bz2.BZ2Decompressor(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += len(dec.decompress(chunk))
    return n


def _decompress_fast(path: Path) -> int:
    import indexed_bzip2

    n = 0
    with indexed_bzip2.open(str(path), parallelization=1) as f:
        while chunk := f.read(1 << 20):
            n += len(chunk)
    return n


def _count(path: Path, batch_rows: int = 1024) -> tuple[float, float, float, float]:
    """(wall, cpu) seconds of the counting stage, then (wall, cpu) of the merge."""
    from wit.queries import counts, wikipedia
    from wit.runners import run_stage

    def merge(tmp):
        counts.bigram_pmi(tmp, counts.merge_unigrams(tmp), 30.0)

    with tempfile.TemporaryDirectory() as tmp:
        stage = counts.CountStage(spill_dir=tmp, buckets=16, batch_rows=batch_rows)
        slices = [s.encode() for s in wikipedia.plan_slices(str(path))]
        cw, cc, _ = _timed(lambda: run_stage(stage, slices, tmp, progress=False))
        mw, mc, _ = _timed(merge, tmp)
        return cw, cc, mw, mc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dump", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-rows", type=int, default=1024,
                    help="pages per counting batch (the stage's default; smaller shows per-batch costs)")
    args = ap.parse_args()
    path = Path(args.dump)
    size = _decompress(path)
    _count(path, args.batch_rows)  # warm-up: imports, page cache
    assert _decompress_fast(path) == size
    runs = []
    for _ in range(args.repeat):
        dw, dc, _ = _timed(_decompress, path)
        fw, fc, _ = _timed(_decompress_fast, path)
        runs.append((dw, dc) + _count(path, args.batch_rows) + (fw, fc))
    med = [statistics.median(r[i] for r in runs) for i in range(8)]
    per_round = sorted(r[3] / r[1] for r in runs)  # CPU: counting over decompression, each round
    dw, dc, cw, cc, mw, mc, fw, fc = med
    mb = size / 1e6
    result = {
        "dump": path.name,
        "uncompressed_mb": round(mb, 2),
        "repeats": args.repeat,
        "batch_rows": args.batch_rows,
        "bz2_decompress_mb_s_per_core": round(mb / dw, 2),
        "indexed_bzip2_decompress_mb_s_per_core": round(mb / fw, 2),
        "count_mb_s_per_core": round(mb / cw, 2),
        "count_over_decompress": round(cw / dw, 2),
        "cpu_count_over_decompress": round(cc / dc, 2),
        "cpu_count_over_decompress_per_round": {"median": round(statistics.median(per_round), 2),
                                                "min": round(per_round[0], 2), "max": round(per_round[-1], 2)},
        "cpu_count_over_wit_decoder": round(cc / fc, 2),
        "merge_seconds": round(mw, 3),
        "cpu_count_and_merge_over_decompress": round((cc + mc) / dc, 2),
        "goal_count_over_decompress": 1.5,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
