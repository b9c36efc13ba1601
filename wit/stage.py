"""The stage protocol: setup() / process_batch(table) -> BatchResult / teardown().

A stage is a small config object (picklable; heavy state such as automata or models is built
in ``setup()``). ``process_batch`` takes an Arrow table and returns the rows kept and, for the
rows dropped, their uid and a short stable reason code. Runners (wit/runners) own scheduling,
files, markers and the ledger; stages own per-record logic and never import ray.

A stage whose input is not Parquet (e.g. crawl files) overrides ``read_task`` to turn one task
input (a path) into Arrow batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from wit import schemas


#: set by a runner in a worker process before ``Stage.setup``: the CPUs it reserved for that worker
#: (``Resources.cpus``), which a threaded stage sizes its CPU-bound work by (download's decode turns)
WORKER_CPUS_ENV = "WIT_WORKER_CPUS"


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage reserves on a runner that schedules by resources (Ray)."""

    cpus: float = 1.0
    gpus: float = 0.0
    #: bytes of memory; None reserves none
    memory: int | None = None


@dataclass
class BatchResult:
    kept: pa.Table
    dropped: pa.Table = field(default_factory=lambda: schemas.empty(schemas.DROPS))
    # Counts that are not per-candidate (e.g. broken WARC records): reason -> n.
    errors: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def drops(uids: list[str], reasons: list[str], details: list[str] | None = None) -> pa.Table:
        """Dropped uids with their reason codes (``wit.reasons``) and optional per-row details."""
        return pa.table({"uid": pa.array(uids, pa.string()), "reason": pa.array(reasons, pa.string()),
                         "detail": pa.array(details if details is not None else [""] * len(uids), pa.string())})


class Stage:
    """Base class; subclasses are usually dataclasses whose fields are their config."""

    #: the stage name used in the ledger and in run.json
    name: str = "stage"
    #: the Arrow schema of the kept rows (None: whatever process_batch returns)
    output_schema: pa.Schema | None = None
    #: rows per batch handed to process_batch
    batch_rows: int = 8192

    def setup(self) -> None:
        """Load models / automata. Called once per worker before any batch."""

    def teardown(self) -> None:
        """Release what setup() acquired."""

    #: what one worker of this stage needs (the ray runner reserves it)
    resources: ClassVar[Resources] = Resources()
    #: a worker runs a pool of threads (download): on Ray its actors start with the configured
    #: ``MALLOC_ARENA_MAX`` (``ray.malloc_arenas``), so what the threads free is not spread over many
    #: glibc arenas and the actor does not grow with the tasks it runs
    threaded: ClassVar[bool] = False
    #: runner name -> "module:function" of a context manager that sets up what that runner's workers
    #: share (see ``wit.runners.run_stage``); the stage itself never imports the runner's libraries
    runner_hooks: ClassVar[dict[str, str]] = {}

    def begin_task(self, path: str, index: int) -> None:
        """Called before a task's batches; a stage may load per-task context here."""

    def read_task(self, path: str) -> Iterator[pa.Table]:
        """Yield the input batches of one task input (default: a Parquet file)."""
        import fsspec

        with fsspec.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            for rb in pf.iter_batches(batch_size=self.batch_rows):
                yield pa.Table.from_batches([rb])

    def input_schema(self, path: str) -> pa.Schema | None:
        """The columns of one task input (default: its Parquet footer's), which a stage without an
        ``output_schema`` writes when its input has no rows: an empty part still has its columns."""
        import fsspec

        try:
            with fsspec.open(path, "rb") as f:
                return pq.ParquetFile(f).schema_arrow
        except (OSError, ValueError, pa.ArrowException):
            return None

    def process_batch(self, batch: pa.Table) -> BatchResult:
        raise NotImplementedError

    def write_output(self, kept: pa.Table, out: str, index: int) -> int:
        """Write one task's kept rows under ``out``; return the number of rows written.

        Default: ``out/part-NNNNN.parquet`` atomically. The shard stage overrides this to write
        a webdataset tar beside its Parquet.
        """
        from wit.io import folders

        folders.write_parquet(folders.join(out, folders.part_name(index)), kept)
        return kept.num_rows
