"""Balance fidelity: the two-pass pipeline (before download at t x oversample, after dedupe at t)
against one pass of MetaCLIP Algorithm 1 at t over the whole pool, on a Zipf pool of 1M pairs.

Each seed draws the balance coins (``unit_hash(uid, entry, seed)``, both passes) and which pairs
survive download, filter and dedupe (an independent coin per uid, ``--survive``). The final pass
runs twice: with counts recomputed over the survivors (``--recount``, before the fix) and with the
pool's entry counts (the default now). Prints, for the top head entries, the single-entry pairs kept
against Algorithm 1's expectation (n_single x survive x t / count), and a head/tail table.

    .venv/bin/python benchmarks/balance_fidelity.py [--rows 1000000] [--t 200] [--oversample 2] [--seeds 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.balance import algorithm
from wit.records import unit_hash


def zipf_pool(n: int, n_entries: int, seed: int = 0, max_per_row: int = 3) -> tuple[list[str], pa.ListArray]:
    rng = np.random.default_rng(seed)
    per = rng.integers(1, max_per_row + 1, n)
    flat = (rng.zipf(1.3, per.sum()) - 1) % n_entries
    offsets = np.concatenate(([0], np.cumsum(per)))
    lists = [sorted(set(flat[a:b].tolist())) for a, b in zip(offsets[:-1], offsets[1:])]
    return [f"{i:032x}" for i in range(n)], pa.array(lists, pa.list_(pa.int32()))


def entry_counts(qids: pa.ListArray, n_entries: int) -> np.ndarray:
    return np.bincount(pc.list_flatten(qids).to_numpy(), minlength=n_entries).astype(np.int64)


def single_entry_kept(qids: pa.ListArray, keep: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Per entry in ``entries``: kept rows whose only entry it is."""
    lengths = pc.list_value_length(qids).to_numpy()
    first = pc.list_element(qids, 0).to_numpy(zero_copy_only=False)
    sel = keep & (lengths == 1)
    return np.array([int(np.sum(sel & (first == e))) for e in entries])


def head_tail(before: np.ndarray, after: np.ndarray, t: int) -> dict:
    head = before > t
    return {"head": int(head.sum()), "tail": int(((before > 0) & ~head).sum()),
            "matches": int(after.sum()), "head_share": float(after[head].sum() / after.sum()),
            "head_mean": float(after[head].mean()), "head_max": int(after[head].max()),
            "tail_kept": float(after[(before > 0) & ~head].sum() / before[(before > 0) & ~head].sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--t", type=int, default=200)
    ap.add_argument("--oversample", type=float, default=2.0)
    ap.add_argument("--survive", type=float, default=0.6, help="share of first-pass pairs left after dedupe")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--top", type=int, default=4)
    args = ap.parse_args()
    t0 = time.perf_counter()
    uids, qids = zipf_pool(args.rows, args.entries)
    pool = entry_counts(qids, args.entries)
    lengths = pc.list_value_length(qids).to_numpy()
    top = np.argsort(-pool, kind="stable")[: args.top]
    n_single = single_entry_kept(qids, np.ones(len(uids), bool), top)
    expected = n_single * args.survive * args.t / pool[top]
    before_fix, after_fix, tables, identical = [], [], {"before": [], "after": [], "one": []}, 0
    for seed in range(args.seeds):
        survive = np.array([unit_hash(u, "survives", seed) < args.survive for u in uids])
        first = algorithm.metaclip_keep(uids, qids, pool, args.t * args.oversample, seed)
        idx = np.flatnonzero(first & survive)
        s_uids, s_qids = [uids[i] for i in idx], qids.take(pa.array(idx))
        recount = algorithm.metaclip_keep(s_uids, s_qids, entry_counts(s_qids, args.entries), args.t, seed)
        fixed = algorithm.metaclip_keep(s_uids, s_qids, pool, args.t, seed)
        one = algorithm.metaclip_keep(uids, qids, pool, args.t, seed) & survive
        full_fixed = np.zeros(len(uids), bool)
        full_fixed[idx[fixed]] = True
        identical += bool(np.array_equal(full_fixed, one))
        full_recount = np.zeros(len(uids), bool)
        full_recount[idx[recount]] = True
        before_fix.append(single_entry_kept(qids, full_recount, top))
        after_fix.append(single_entry_kept(qids, full_fixed, top))
        for name, keep in (("before", full_recount), ("after", full_fixed), ("one", one)):
            tables[name].append(head_tail(pool, entry_counts(qids.filter(pa.array(keep)), args.entries), args.t))
    bf, af = np.array(before_fix, float), np.array(after_fix, float)
    print(f"pool: {args.rows:,} pairs ({int(lengths.sum()):,} entry matches, 1-3 entries each, Zipf 1.3 over "
          f"{args.entries:,} entries); t={args.t}, oversample={args.oversample:g}, survive={args.survive:g}, "
          f"seeds 0-{args.seeds - 1}")
    print(f"final pass with pool counts == one pass of Algorithm 1 among survivors: {identical}/{args.seeds} seeds")
    print("\nsingle-entry pairs kept per head entry (mean over seeds, sd):")
    print("| entry rank | pool count | single-entry pairs | expected kept | before fix (recount) | after fix (pool counts) |")
    print("|---|---|---|---|---|---|")
    for r in range(len(top)):
        print(f"| {r + 1} | {pool[top[r]]:,} | {n_single[r]:,} | {expected[r]:.1f} | "
              f"{bf[:, r].mean():.1f} ± {bf[:, r].std():.1f} ({bf[:, r].mean() / expected[r]:.2f}x) | "
              f"{af[:, r].mean():.1f} ± {af[:, r].std():.1f} ({af[:, r].mean() / expected[r]:.2f}x) |")
    base = head_tail(pool, pool, args.t)
    print("\nhead/tail statistics (head: pool count > t; mean over seeds):")
    print("| pairs | head entries | tail entries | entry matches | head share | mean kept per head entry "
          "| max kept per head entry | tail matches kept |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| pool | {base['head']:,} | {base['tail']:,} | {base['matches']:,} | {base['head_share']:.3f} | "
          f"{base['head_mean']:.1f} | {base['head_max']:,} | 1.000 |")
    for name, label in (("one", "one pass at t, survivors"), ("before", "two passes, recount (before)"),
                        ("after", "two passes, pool counts (after)")):
        rows = tables[name]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"| {label} | {base['head']:,} | {base['tail']:,} | {mean['matches']:,.0f} | {mean['head_share']:.3f} | "
              f"{mean['head_mean']:.1f} | {mean['head_max']:,.0f} | {mean['tail_kept']:.3f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
