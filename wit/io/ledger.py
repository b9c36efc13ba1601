"""The ledger: every candidate's fate, once per stage it reached, and the reconcile check.

Ledger parts live in ``RUN/ledger/<stage>-NNNNN.parquet`` (uid, stage, status, reason, detail;
parts written before ``detail`` existed read as well). ``reason`` is a code of ``wit.reasons``. The stats
of each finished task live in its completion marker. Reconciling checks, per stage:

* in = kept + dropped (from the markers) and the ledger has exactly that many rows;
* the kept rows in the ledger equal the rows in the stage's output;
* a uid is kept at most once per stage (the candidates stage may list an occurrence that is a
  duplicate of a kept one as dropped ``duplicate``: its rows count occurrences);
* a stage's input equals the previous stage's kept count when they are chained in a run.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import duckdb
import pyarrow as pa

from wit import schemas
from wit.io import folders

KEPT = "kept"
_PART = re.compile(r"[^._].*\.parquet")
_OUTPUT_PART = re.compile(r"part-[0-9]+\.parquet")
_SHARD_PART = re.compile(r"[0-9]{5}\.parquet")
DROPPED = "dropped"


def ledger_table(stage: str, kept_uids: pa.Array | list, drops: pa.Table) -> pa.Table:
    n_kept = len(kept_uids)
    n_drop = drops.num_rows
    uids = pa.concat_arrays(
        [pa.array(kept_uids, pa.string()) if not isinstance(kept_uids, pa.Array) else kept_uids.cast(pa.string()),
         drops.column("uid").combine_chunks().cast(pa.string())]
    )
    return pa.table(
        {
            "uid": uids,
            "stage": pa.array([stage] * (n_kept + n_drop), pa.string()),
            "status": pa.array([KEPT] * n_kept + [DROPPED] * n_drop, pa.string()),
            "reason": pa.concat_arrays(
                [pa.array([""] * n_kept, pa.string()), drops.column("reason").combine_chunks().cast(pa.string())]
            ),
            "detail": pa.concat_arrays(
                [pa.array([""] * n_kept, pa.string()),
                 drops.column("detail").combine_chunks().cast(pa.string()) if "detail" in drops.column_names
                 else pa.array([""] * n_drop, pa.string())]
            ),
        },
        schema=schemas.LEDGER,
    )


def ledger_part_url(ledger_dir: str, stage: str, index: int) -> str:
    return folders.join(ledger_dir, f"{stage}-{index:05d}.parquet")


def write_part(ledger_dir: str, stage: str, index: int, table: pa.Table) -> None:
    folders.write_parquet(ledger_part_url(ledger_dir, stage, index), table)


@dataclass
class StageCheck:
    stage: str
    ledger_rows: int
    kept: int
    dropped: int
    by_reason: dict[str, int] = field(default_factory=dict)
    marker_in: int | None = None
    output_rows: int | None = None
    duplicate_kept: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def summarize(ledger_dir: str) -> dict[str, StageCheck]:
    """Per-stage counts by reason code straight from the ledger files (DuckDB over Parquet); the reasons
    of older ledgers, which carried a detail after a colon, count under their code."""
    files = folders.list_named(ledger_dir, _PART)
    if not files:
        return {}
    con = duckdb.connect()
    folders.duckdb_view(con, "ledger", files)
    rows = con.execute("SELECT stage, status, split_part(reason, ':', 1), count(*) FROM ledger GROUP BY ALL ORDER BY ALL"
                       ).fetchall()
    dups = dict(
        con.execute(
            """SELECT stage, count(*) FROM (
                  SELECT stage, uid FROM ledger WHERE status = 'kept'
                  GROUP BY stage, uid HAVING count(*) > 1) GROUP BY stage"""
        ).fetchall()
    )
    return checks_from_counts(rows, dups)


def checks_from_counts(rows, dups: dict[str, int]) -> dict[str, StageCheck]:
    """Per-stage checks from ``(stage, status, reason, n)`` group counts and the uids kept more than
    once per stage; the one assembly for the local summary and the distributed one."""
    out: dict[str, StageCheck] = {}
    for stage, status, reason, n in rows:
        c = out.setdefault(stage, StageCheck(stage, 0, 0, 0))
        c.ledger_rows += n
        if status == KEPT:
            c.kept += n
        else:
            c.dropped += n
            c.by_reason[reason] = c.by_reason.get(reason, 0) + n
    for stage, n in dups.items():
        out[stage].duplicate_kept = n
    return out


def reconcile(ledger_dir: str, stage_outputs: dict[str, str] | None = None, chain: list[str] | None = None,
              **runner_kwargs) -> dict[str, StageCheck]:
    """Check the ledger against the markers and outputs of each stage; problems are listed per stage.

    ``stage_outputs`` maps stage name -> its output folder (with ``_markers``); ``chain`` is the
    order of stages in a run, to check that each stage's input equals the previous kept count.
    ``runner_kwargs`` (runner="ray", address) sum the ledger with a Ray shuffle instead of DuckDB here.
    """
    from wit.distributed.global_ops import summarize_ledger

    checks = summarize_ledger(ledger_dir, **runner_kwargs)
    stage_outputs = stage_outputs or {}
    for stage, out in stage_outputs.items():
        c = checks.setdefault(stage, StageCheck(stage, 0, 0, 0))
        markers = folders.read_markers(out)
        if not markers:
            c.problems.append(f"no completion markers in {out}")
            continue
        c.marker_in = sum(m["in"] for m in markers)
        m_kept = sum(m["kept"] for m in markers)
        m_dropped = sum(m["dropped"] for m in markers)
        c.output_rows = sum(m.get("output_rows", m["kept"]) for m in markers)
        if c.marker_in != m_kept + m_dropped:
            c.problems.append(f"markers: in {c.marker_in} != kept {m_kept} + dropped {m_dropped}")
        if c.ledger_rows != c.marker_in:
            c.problems.append(f"ledger rows {c.ledger_rows} != stage input {c.marker_in}")
        if c.kept != m_kept:
            c.problems.append(f"ledger kept {c.kept} != markers kept {m_kept}")
        try:
            n_out = _count_output_rows(out)
            if n_out is not None and n_out != c.kept:
                c.problems.append(f"output rows {n_out} != ledger kept {c.kept}")
        except FileNotFoundError:
            pass
    for stage, c in checks.items():
        # The candidates stage lists occurrences: the same (url, text) pair found in two crawl
        # files is kept in both, and `match` drops every occurrence but the first as `duplicate`.
        if c.duplicate_kept and stage != "candidates":
            c.problems.append(f"{c.duplicate_kept} uids kept more than once")
    if chain:
        prev = None
        for stage in chain:
            if stage not in checks:
                continue
            c = checks[stage]
            if prev is not None and c.ledger_rows != checks[prev].kept:
                c.problems.append(f"input {c.ledger_rows} != kept of {prev} ({checks[prev].kept})")
            prev = stage
    return checks


def _count_output_rows(out: str) -> int | None:
    # part-NNNNN.parquet, or NNNNN.parquet beside NNNNN.tar for the shard stage
    files = folders.list_named(out, _OUTPUT_PART) or folders.list_named(out, _SHARD_PART)
    return folders.parquet_rows(files) if files else None


def as_dict(checks: dict[str, StageCheck]) -> dict:
    return {k: {**asdict(v), "ok": v.ok} for k, v in checks.items()}
