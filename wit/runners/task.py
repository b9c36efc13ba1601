"""One task of a stage: read input, process batches, write output + ledger part + marker."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

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
    for batch in stage.read_task(path):
        n_in += batch.num_rows
        res: BatchResult = stage.process_batch(batch)
        if res.kept.num_rows:
            kept.append(res.kept)
        if res.dropped.num_rows:
            drops.append(res.dropped)
        for k, v in res.errors.items():
            errors[k] = errors.get(k, 0) + v
    kept_t = _concat(kept, stage.output_schema)
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


@dataclass
class StageReport:
    stage: str
    tasks: int = 0
    skipped: int = 0
    n_in: int = 0
    kept: int = 0
    dropped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    runner: str = "local"

    def add(self, stats: dict) -> None:
        self.tasks += 1
        self.skipped += int(bool(stats.get("skipped")))
        self.n_in += stats["in"]
        self.kept += stats["kept"]
        self.dropped += stats["dropped"]
        for src, dst in ((stats.get("by_reason", {}), self.by_reason), (stats.get("errors", {}), self.errors)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "runner": self.runner,
            "tasks": self.tasks,
            "skipped_tasks": self.skipped,
            "in": self.n_in,
            "kept": self.kept,
            "dropped": self.dropped,
            "by_reason": dict(sorted(self.by_reason.items())),
            "errors": dict(sorted(self.errors.items())),
            "seconds": round(self.seconds, 3),
        }


def run_stage(
    stage: Stage,
    inputs: list[str],
    out: str,
    *,
    runner: str = "local",
    ledger_dir: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> StageReport:
    """Run ``stage`` over ``inputs`` (one task each, in sorted order) into ``out``."""
    if not inputs:
        raise ValueError(f"stage {stage.name}: no inputs")
    folders.makedirs(out)
    t0 = time.perf_counter()
    tasks = list(enumerate(inputs))
    if runner == "local":
        from wit.runners.local import run_local

        all_stats = run_local(stage, tasks, out, ledger_dir, progress=progress)
    elif runner == "ray":
        from wit.runners.ray import run_ray

        all_stats = run_ray(stage, tasks, out, ledger_dir, address=address, workers=workers, progress=progress)
    else:
        raise ValueError(f"unknown runner {runner!r}; choose local or ray")
    failures = [s["failed"] for s in all_stats if "failed" in s]
    if failures:
        from wit.distributed.shuffle import GlobalStepError

        first = failures[0]
        raise GlobalStepError(first["step"], first["input"], first["error"], failures)
    report = StageReport(stage.name, runner=runner)
    for s in sorted(all_stats, key=lambda s: s["index"]):
        report.add(s)
    report.seconds = time.perf_counter() - t0
    log.info("%s: %s", stage.name, report.as_dict())
    return report
