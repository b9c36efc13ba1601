"""One task of a stage: read input, process batches, write output + ledger part + marker."""

from __future__ import annotations

import logging
import time

import pyarrow as pa

from wit import schemas
from wit.io import folders, ledger
from wit.stage import BatchResult, Stage

log = logging.getLogger(__name__)


def _concat(tables: list[pa.Table], schema: pa.Schema | None) -> pa.Table:
    if not tables:
        return schemas.empty(schema) if schema is not None else pa.table({})
    if schema is not None:
        tables = [schemas.conform(t, schema) for t in tables]
    return pa.concat_tables(tables, promote_options="default")


def run_task(stage: Stage, index: int, path: str, out: str, ledger_dir: str | None) -> dict:
    """Run task ``index`` of ``stage`` on input ``path``; skip it if its marker exists.

    Write order is output, ledger part, marker: a task killed before its marker is redone
    whole on the rerun, and its files are overwritten under the same names (no duplicates).
    """
    marker = folders.marker_url(out, index)
    if folders.exists(marker):
        stats = folders.read_json(marker)
        stats["skipped"] = True
        return stats
    t0 = time.perf_counter()
    stage.begin_task(path, index)
    n_in = 0
    kept: list[pa.Table] = []
    drops: list[pa.Table] = []
    errors: dict[str, int] = {}
    empty = None  # the columns of a batch that kept nothing: a part that keeps no row still has them
    for batch in stage.read_task(path):
        n_in += batch.num_rows
        res: BatchResult = stage.process_batch(batch)
        if res.kept.num_rows:
            kept.append(res.kept)
        elif empty is None and res.kept.num_columns:
            empty = res.kept.schema
        if res.dropped.num_rows:
            drops.append(res.dropped)
        for k, v in res.errors.items():
            errors[k] = errors.get(k, 0) + v
    if stage.output_schema is None and not kept and empty is None and n_in == 0:
        empty = stage.input_schema(path)
    kept_t = _concat(kept, stage.output_schema if stage.output_schema is not None or kept else empty)
    drops_t = _concat(drops, schemas.DROPS)
    if kept_t.num_rows + drops_t.num_rows != n_in:
        raise RuntimeError(
            f"stage {stage.name}: task {index} ({path}) read {n_in} rows but kept {kept_t.num_rows}"
            f" + dropped {drops_t.num_rows}: a stage must account for every row"
        )
    written = stage.write_output(kept_t, out, index)
    if ledger_dir is not None:
        uids = kept_t.column("uid").combine_chunks() if kept_t.num_rows else pa.array([], pa.string())
        ledger.write_part(ledger_dir, stage.name, index, ledger.ledger_table(stage.name, uids, drops_t))
    by_reason: dict[str, int] = {}
    if drops_t.num_rows:
        for r, n in zip(*_value_counts(drops_t.column("reason"))):
            by_reason[r] = n
    stats = {
        "stage": stage.name,
        "index": index,
        "input": path,
        "in": n_in,
        "kept": kept_t.num_rows,
        "dropped": drops_t.num_rows,
        "output_rows": written,
        "by_reason": by_reason,
        "errors": errors,
        "seconds": round(time.perf_counter() - t0, 4),
    }
    folders.write_json(marker, stats)
    return stats


def _value_counts(col: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    vc = col.combine_chunks().value_counts()
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


def release_memory() -> None:
    """Give freed memory back to the system between tasks of a long-lived worker: Arrow's pool, and
    glibc's per-thread malloc arenas (``malloc_trim``), which otherwise keep what a download's threads
    once decoded. Measured in benchmarks/scale.py: without it a stage actor's private memory grew with
    the number of tasks it had run."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_TRIM: list = []


def _malloc_trim():
    if not _TRIM:
        try:
            import ctypes

            _TRIM.append(ctypes.CDLL("libc.so.6").malloc_trim)
        except (OSError, AttributeError):  # not glibc
            _TRIM.append(None)
    return _TRIM[0]
