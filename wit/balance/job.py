"""Running a balance pass over a folder: hard-cap pre-pass, the stage, then head/tail statistics."""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pyarrow as pa

from wit import schemas
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


def _carries_more_than_matched(part: str) -> bool:
    """Whether a balance input part has columns beyond the balanced schema (images, descriptors)."""
    import pyarrow.parquet as pq

    fs, path = folders.fs_and_path(part)
    with fs.open(path, "rb") as fh:
        names = set(pq.ParquetFile(fh).schema_arrow.names)
    return bool(names - set(schemas.BALANCED.names))


def balance_folder(inputs: str | list[str], out: str, *, t: int, oversample: float = 1.0, mode: str = "metaclip",
                   seed: int = 0, name: str = "balance", counts_url: str | None = None,
                   **runner_kwargs) -> dict:
    """Balance the parts of ``inputs`` into ``out``; write balance_stats.json and the curve PNG.

    ``counts_url``: the entry counts p_e is computed from. With the pool's counts
    (matched/entry_counts.parquet) both passes are Algorithm 1 over the whole pool: the final pass
    keeps exactly the survivors that one pass at t would keep. None recounts over ``inputs``
    (``--recount``), which after download thins head entries less: not Algorithm 1.
    The output keeps every input column when the input carries more than the matched columns
    (images and descriptors after download), else the balanced schema.
    """
    parts = part_files(inputs)
    if not parts:
        raise ValueError(f"{name}: no input parts in {inputs}")
    keep_columns = _carries_more_than_matched(parts[0])
    if counts_url is not None and not folders.exists(counts_url):
        raise FileNotFoundError(f"{name}: entry counts {counts_url} not found (match writes them; "
                                "or recount over the input)")
    folders.makedirs(out)
    input_counts_url = folders.join(out, INPUT_COUNTS_FILE)
    input_counts = global_ops.entry_counts(parts, **runner_kwargs)
    folders.write_parquet(input_counts_url, input_counts)
    counts_url = counts_url or input_counts_url
    counts = folders.read_parquet([counts_url])
    thresholds = None
    if mode == "hardcap":
        thresholds = folders.join(out, THRESHOLDS_FILE)
        folders.write_parquet(thresholds, global_ops.hardcap_thresholds(parts, counts, int(cap_of(t, oversample)), seed,
                                                                        **runner_kwargs))
    stage = BalanceStage(counts=counts_url, t=t, oversample=oversample, mode=mode, seed=seed,
                         thresholds=thresholds, name=name, keep_columns=keep_columns)
    report = run_stage(stage, parts, out, **runner_kwargs).as_dict()
    after = global_ops.entry_counts(out, **runner_kwargs)
    stats = balance_stats(input_counts, after, out, cap_of(t, oversample), head_by=counts, **runner_kwargs)
    stats.update({"t": t, "oversample": oversample, "mode": mode, "seed": seed,
                  "counts": "recount" if counts_url == input_counts_url else counts_url})
    folders.write_json(folders.join(out, STATS_FILE), stats)
    try:
        write_curve(input_counts, after, cap_of(t, oversample), folders.join(out, CURVE_FILE), t=t)
    except Exception as err:  # noqa: BLE001 - a plot must not fail a finished pass
        log.warning("balance: could not draw the curve: %s", err)
    report["stats"] = {k: stats[k] for k in ("head_entries", "head_share_before", "head_share_after")}
    return report


def balance_stats(before: pa.Table, after: pa.Table, out: str, cap: float, head_by: pa.Table | None = None,
                  **runner_kwargs) -> dict:
    """Head/tail figures like MetaCLIP's tables: entries over the cap and the share of matches they hold.

    ``before``: the input's entry counts; ``head_by``: the counts that decide which entries are head
    (count > cap), by default ``before``; with the pool's counts the head is the pool's head.
    """
    b = before.column("count").to_numpy()
    a_lookup = dict(zip(after.column("query_id").to_pylist(), after.column("count").to_pylist()))
    head_by = before if head_by is None else head_by
    head_ids = {q for q, c in zip(head_by.column("query_id").to_pylist(), head_by.column("count").to_pylist())
                if c > cap}
    in_head = np.isin(before.column("query_id").to_numpy(), np.fromiter(head_ids, np.int64, len(head_ids)))
    n_head = len(head_ids)
    share_before = float(b[in_head].sum() / b.sum()) if b.sum() else 0.0
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
        "tail_entries": int(len(b) - in_head.sum()),
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


def write_curve(before: pa.Table, after: pa.Table, cap: float, url: str, t: float | None = None) -> None:
    """The head/tail curve: entry counts sorted descending, before and after balancing (log-log).

    Balancing keeps a pair when any of its entries' coins lands, so tail entries carry many head
    pairs through and the two curves can lie close; they are drawn so that either stays visible.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {"before": dict(color="#9ab", lw=4, alpha=0.8, solid_capstyle="round"),
              "after": dict(color="#c33", lw=1.4, ls="--", marker=".", ms=3)}
    totals = {}
    for table, label in ((before, "before"), (after, "after")):
        c = np.sort(table.column("count").to_numpy())[::-1]
        c = c[c > 0]
        totals[label] = int(c.sum())
        if len(c):
            ax.loglog(np.arange(1, len(c) + 1), c, label=f"{label}: {len(c)} entries, {int(c.sum()):,} matches",
                      **styles[label])
    t = cap if t is None else t
    ax.axhline(t, color="#333", ls=":", lw=1.2, label=f"t = {t:g}")
    if cap != t:
        ax.axhline(cap, color="#777", ls="-.", lw=1, label=f"cap before download = t x oversample = {cap:g}")
    ax.set_xlabel("entry rank (by matches, descending)")
    ax.set_ylabel("matched pairs per entry")
    ax.set_title("Entry counts before and after balancing", fontsize=11)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.25, which="both")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    folders.atomic_write_bytes(url, buf.getvalue())
