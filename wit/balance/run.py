"""Running a balance pass over a folder: hard-cap pre-pass, the stage, then head/tail statistics."""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pyarrow as pa

from wit.balance import algorithm
from wit.balance.stage import BalanceStage, cap_of
from wit.distributed import global_ops
from wit.io import folders
from wit.match.counts import part_files
from wit.runners import run_stage

log = logging.getLogger(__name__)

THRESHOLDS_FILE = "_hardcap_thresholds.parquet"
INPUT_COUNTS_FILE = "_input_entry_counts.parquet"
STATS_FILE = "balance_stats.json"
CURVE_FILE = "balance_curve.png"


def hardcap_thresholds(parts: list[str], counts: pa.Table, cap: int, seed: int) -> pa.Table:
    """(query_id, threshold): per attributed entry with more than ``cap`` pairs, the cap-th lowest coin.

    A global pass over the pool, so the stage itself stays a per-shard map: a pair attributed to
    such an entry is kept iff its coin is at or under the threshold, i.e. among the ``cap`` lowest.
    """
    lookup = algorithm.count_lookup(counts)
    ents, coins = [], []
    for p in parts:
        t = folders.read_parquet([p], columns=["uid", "query_ids"])
        qids = t.column("query_ids").combine_chunks()
        att = algorithm.attribute(qids, lookup)
        att_counts = algorithm._count_of(lookup, att)
        # Only entries whose pool count exceeds the cap can have more than cap attributed pairs.
        sel = np.flatnonzero((att >= 0) & (att_counts > cap))
        uids = t.column("uid").to_pylist()
        ents.append(att[sel])
        coins.append(algorithm.hardcap_coins([uids[i] for i in sel], att[sel], seed))
    pool = pa.table({"query_id": np.concatenate(ents or [np.empty(0, np.int64)]),
                     "coin": np.concatenate(coins or [np.empty(0)])})
    con = duckdb.connect()
    con.register("pool", pool)
    out = con.sql(
        """SELECT query_id::INTEGER AS query_id, max(coin) AS threshold FROM (
             SELECT query_id, coin, row_number() OVER (PARTITION BY query_id ORDER BY coin) AS rank FROM pool)
           WHERE query_id IN (SELECT query_id FROM pool GROUP BY query_id HAVING count(*) > ?) AND rank <= ?
           GROUP BY query_id ORDER BY query_id""",
        params=[cap, cap],
    ).to_arrow_table()
    return pa.table({"query_id": out.column("query_id").cast(pa.int32()),
                     "threshold": out.column("threshold").cast(pa.float64())})


def balance_folder(inputs: str | list[str], out: str, *, t: int, oversample: float = 1.0, mode: str = "metaclip",
                   seed: int = 0, name: str = "balance", counts_url: str | None = None,
                   **runner_kwargs) -> dict:
    """Balance the parts of ``inputs`` into ``out``; write balance_stats.json and the curve PNG.

    ``counts_url``: the pool's entry counts (the pre pass reads matched/entry_counts.parquet);
    when None they are recomputed over ``inputs`` with the same exact reduce (the final pass).
    """
    parts = part_files(inputs)
    if not parts:
        raise ValueError(f"{name}: no input parts in {inputs}")
    folders.makedirs(out)
    if counts_url is None:
        counts_url = folders.join(out, INPUT_COUNTS_FILE)
        folders.write_parquet(counts_url, global_ops.entry_counts(parts, **runner_kwargs))
    counts = folders.read_parquet([counts_url])
    thresholds = None
    if mode == "hardcap":
        thresholds = folders.join(out, THRESHOLDS_FILE)
        folders.write_parquet(thresholds, global_ops.hardcap_thresholds(parts, counts, int(cap_of(t, oversample)), seed,
                                                                        **runner_kwargs))
    stage = BalanceStage(counts=counts_url, t=t, oversample=oversample, mode=mode, seed=seed,
                         thresholds=thresholds, name=name)
    report = run_stage(stage, parts, out, **runner_kwargs).as_dict()
    after = global_ops.entry_counts(out, **runner_kwargs)
    stats = balance_stats(counts, after, out, cap_of(t, oversample), **runner_kwargs)
    stats.update({"t": t, "oversample": oversample, "mode": mode, "seed": seed})
    folders.write_json(folders.join(out, STATS_FILE), stats)
    try:
        write_curve(counts, after, cap_of(t, oversample), folders.join(out, CURVE_FILE))
    except Exception as err:  # noqa: BLE001 - a plot must not fail a finished pass
        log.warning("balance: could not draw the curve: %s", err)
    report["stats"] = {k: stats[k] for k in ("head_entries", "head_share_before", "head_share_after")}
    return report


def _share(counts: np.ndarray, cap: float) -> tuple[int, float]:
    total = counts.sum()
    head = counts[counts > cap]
    return int(len(head)), float(head.sum() / total) if total else 0.0


def balance_stats(before: pa.Table, after: pa.Table, out: str, cap: float, **runner_kwargs) -> dict:
    """Head/tail figures like MetaCLIP's tables: entries over the cap and the share of matches they hold."""
    b = before.column("count").to_numpy()
    a_lookup = dict(zip(after.column("query_id").to_pylist(), after.column("count").to_pylist()))
    head_ids = [q for q, c in zip(before.column("query_id").to_pylist(), b.tolist()) if c > cap]
    n_head, share_before = _share(b, cap)
    a = after.column("count").to_numpy()
    after_total = int(a.sum())
    head_after = sum(a_lookup.get(q, 0) for q in head_ids)
    parts = part_files(out)
    per_source = {str(s): n for s, n in sorted(global_ops.count_by(parts, "source", **runner_kwargs).items())}
    head_after_counts = np.array([a_lookup.get(q, 0) for q in head_ids], np.float64)
    return {
        "cap": cap,
        "entries_matched": int(len(b)),
        "matches_before": int(b.sum()),
        "matches_after": after_total,
        "head_entries": n_head,
        "tail_entries": int(len(b) - n_head),
        "head_share_before": share_before,
        "head_share_after": float(head_after / after_total) if after_total else 0.0,
        "kept_pairs": int(sum(per_source.values())),
        "kept_per_source": per_source,
        "kept_per_entry": {
            "entries": int(len(a)),
            "max": int(a.max()) if len(a) else 0,
            "median": float(np.median(a)) if len(a) else 0.0,
            "head_mean": float(head_after_counts.mean()) if len(head_ids) else 0.0,
            "head_max": int(head_after_counts.max()) if len(head_ids) else 0,
        },
    }


def write_curve(before: pa.Table, after: pa.Table, cap: float, url: str) -> None:
    """The head/tail curve: entry counts sorted descending, before and after balancing (log-log)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for table, label in ((before, "before"), (after, "after")):
        c = np.sort(table.column("count").to_numpy())[::-1]
        if len(c):
            ax.loglog(np.arange(1, len(c) + 1), c, label=label)
    ax.axhline(cap, color="grey", linestyle="--", label=f"t = {cap:g}")
    ax.set_xlabel("entry rank")
    ax.set_ylabel("matched pairs")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    folders.atomic_write_bytes(url, buf.getvalue())
