"""Exact reduces over a folder of matched parts: entry counts and cross-part duplicates (DuckDB)."""

from __future__ import annotations

import pyarrow as pa

from wit import schemas
from wit.io import folders, storage


def part_files(folder_or_files: str | list[str]) -> list[str]:
    """The ``part-*.parquet`` files of a stage output folder (other Parquet files there are not rows)."""
    if isinstance(folder_or_files, list):
        return folder_or_files
    return [p for p in folders.expand(folder_or_files, (".parquet",)) if p.rsplit("/", 1)[-1].startswith("part-")]


def _local(paths: list[str]) -> list[str]:
    return [storage.duckdb_path(p) for p in paths]


def entry_counts(parts: str | list[str]) -> pa.Table:
    """(query_id, count) over every row of ``parts``: how many rows match each entry, exactly."""
    files = part_files(parts)
    if not files:
        return schemas.empty(schemas.ENTRY_COUNTS)
    con = storage.duckdb_connect(files)
    t = con.sql(
        "SELECT q AS query_id, count(*) AS count FROM "
        "(SELECT unnest(query_ids) AS q FROM read_parquet(?)) GROUP BY q ORDER BY q",
        params=[_local(files)],
    ).to_arrow_table()
    return schemas.conform(t, schemas.ENTRY_COUNTS)


def write_entry_counts(parts: str | list[str], url: str) -> pa.Table:
    t = entry_counts(parts)
    folders.write_parquet(url, t)
    return t


def later_duplicates(inputs: list[str]) -> pa.Table:
    """(uid, part) of every occurrence of a uid that is not its first, in input order."""
    if not inputs:
        return pa.table({"uid": pa.array([], pa.string()), "part": pa.array([], pa.int32())})
    con = storage.duckdb_connect(inputs)
    con.execute("CREATE TEMP TABLE files (filename VARCHAR, part INTEGER)")
    con.executemany("INSERT INTO files VALUES (?, ?)", [[p, i] for i, p in enumerate(_local(inputs))])
    t = con.sql(
        """SELECT uid, part FROM (
             SELECT c.uid, f.part, min(f.part) OVER (PARTITION BY c.uid) AS first
             FROM read_parquet(?, filename = true) c JOIN files f USING (filename))
           WHERE part > first ORDER BY part, uid""",
        params=[_local(inputs)],
    ).to_arrow_table()
    return pa.table({"uid": t.column("uid").cast(pa.string()), "part": t.column("part").cast(pa.int32())})
