"""Balancing throughput: `wit.balance.algorithm.metaclip_keep` against a per-pair loop baseline.

The baseline is Algorithm 1 written straight from the paper: for each pair, for each matched entry,
p_e = min(1, t / count_e) and a coin from hash(uid, entry, seed); keep if any coin lands under p_e.
Both run on the same Zipf-distributed pool in one process; outputs are asserted identical.

    .venv/bin/python benchmarks/balance_throughput.py [--rows 500000] [--t 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.balance import algorithm
from wit.records import unit_hash


def zipf_pool(n: int, n_entries: int, seed: int = 0, max_per_row: int = 3):
    rng = np.random.default_rng(seed)
    per = rng.integers(1, max_per_row + 1, n)
    flat = (rng.zipf(1.3, per.sum()) - 1) % n_entries
    offsets = np.concatenate(([0], np.cumsum(per)))
    lists = [sorted(set(flat[a:b].tolist())) for a, b in zip(offsets[:-1], offsets[1:])]
    uids = [f"{i:032x}" for i in range(n)]
    return uids, pa.array(lists, pa.list_(pa.int32()))


def baseline_keep(uids, lists, counts, t, seed):
    keep = np.zeros(len(uids), bool)
    for i, (uid, qids) in enumerate(zip(uids, lists)):
        for q in qids:
            if unit_hash(uid, q, seed) < min(1.0, t / counts[q]):
                keep[i] = True
                break
    return keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--t", type=float, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    uids, qids = zipf_pool(args.rows, args.entries)
    counts = np.bincount(pc.list_flatten(qids).to_numpy(), minlength=args.entries).astype(np.int64)
    lists = qids.to_pylist()
    n_pairs = len(pc.list_flatten(qids))
    base_t, wit_t = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ref = baseline_keep(uids, lists, counts, args.t, seed=7)
        base_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = algorithm.metaclip_keep(uids, qids, counts, args.t, seed=7)
        wit_t.append(time.perf_counter() - t0)
        assert np.array_equal(ref, got), "metaclip_keep differs from the per-pair baseline"
    b, w = statistics.median(base_t), statistics.median(wit_t)
    print(f"{args.rows:,} rows, {n_pairs:,} (pair, entry) matches, {args.entries:,} entries, t={args.t:g}; "
          f"kept {int(ref.sum()):,}")
    print(f"baseline (per-pair loop): {args.rows / b:,.0f} rows/s")
    print(f"wit metaclip_keep:        {args.rows / w:,.0f} rows/s (identical output)")
    print(f"ratio: {b / w:.2f}x (median of {args.repeat})")


if __name__ == "__main__":
    main()
