"""Small real stages used by the foundation tests (importable by Ray workers)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from wit import schemas
from wit.stage import BatchResult, Stage


def kill_once(marker: str) -> None:
    """SIGKILL this process unless ``marker`` exists (creating it first): a worker killed mid-task, once."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class KeepEvenLength(Stage):
    """Keeps rows whose text has an even length; drops the rest as `odd_length`."""

    name: str = "evenlen"
    output_schema = schemas.CANDIDATES
    sleep_per_task: float = 0.0
    #: SIGKILL the worker process at task ``kill_at``, once: the first time, when ``kill_once`` (a file) is absent
    kill_at: int = -1
    kill_once: str = ""

    def setup(self) -> None:
        self.ready = True

    def begin_task(self, path: str, index: int) -> None:
        if self.sleep_per_task:
            time.sleep(self.sleep_per_task)
        if index == self.kill_at and self.kill_once:
            kill_once(self.kill_once)
        marker = os.environ.get("WIT_TEST_CRASH_AT_TASK")
        if marker is not None and int(marker) == index:
            os._exit(9)  # simulate kill -9 in the middle of a run

    def process_batch(self, batch: pa.Table) -> BatchResult:
        assert self.ready, "setup() not called"
        even = pc.equal(pc.bit_wise_and(pc.utf8_length(batch["text"]), 1), 0)
        dropped = batch.filter(pc.invert(even))
        return BatchResult(
            kept=batch.filter(even),
            dropped=BatchResult.drops(dropped["uid"].to_pylist(), ["odd_length"] * dropped.num_rows),
        )


@dataclass
class UpperText(Stage):
    """Upper-cases the text; keeps everything (a second chained stage)."""

    name: str = "upper"
    output_schema = schemas.CANDIDATES

    def process_batch(self, batch: pa.Table) -> BatchResult:
        return BatchResult(kept=batch.set_column(2, "text", pc.utf8_upper(batch["text"])))


@dataclass
class ArenaProbe(KeepEvenLength):
    """A threaded stage that records its worker's MALLOC_ARENA_MAX as each dropped row's detail."""

    name: str = "arenaprobe"
    threaded = True

    def process_batch(self, batch: pa.Table) -> BatchResult:
        res = super().process_batch(batch)
        uids = res.dropped.column("uid").to_pylist()
        env = os.environ.get("MALLOC_ARENA_MAX", "unset")
        return BatchResult(kept=res.kept, dropped=BatchResult.drops(uids, ["odd_length"] * len(uids), [env] * len(uids)))


@dataclass
class UnthreadedArenaProbe(ArenaProbe):
    """``ArenaProbe`` of a stage without threads: its actors start with Ray's own environment."""

    threaded = False
