"""``run_stage``: pick a runner from the registry, run a stage's tasks, sum their stats."""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from wit.errors import StorageFull, disk_full_message
from wit.io import folders
from wit.stage import Stage

log = logging.getLogger(__name__)

_ENOSPC = f"[Errno {errno.ENOSPC}]"

#: runner name -> "module:function"; the module is imported only when the runner is chosen
RUNNERS: dict[str, str] = {
    "local": "wit.runners.local:run_local",
    "ray": "wit.runners.ray:run_ray",
}


def _load(ref: str) -> Callable:
    module, _, func = ref.partition(":")
    return getattr(importlib.import_module(module), func)


def get_runner(name: str) -> Callable:
    """The run function of runner ``name``."""
    if name not in RUNNERS:
        raise ValueError(f"unknown runner {name!r}; choose one of {sorted(RUNNERS)}")
    return _load(RUNNERS[name])


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
    #: what a runner hook adds to the report (e.g. the download's shared host-limit counts)
    extra: dict = field(default_factory=dict)

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
            **self.extra,
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
    """Run ``stage`` over ``inputs`` (one task each, in sorted order) into ``out``.

    A stage may name a runner hook for the chosen runner (``Stage.runner_hooks``): a context manager
    ``hook(stage, address=, progress=)`` yielding ``(stage to run, () -> extra report fields)``, entered
    only when some task is pending; it sets up what the runner's workers share (e.g. Ray actors).
    """
    if not inputs:
        raise ValueError(f"stage {stage.name}: no inputs")
    run = get_runner(runner)
    folders.makedirs(out)
    t0 = time.perf_counter()
    tasks = list(enumerate(inputs))
    pending = [i for i, _ in tasks if not folders.is_done(out, i)]
    hook = stage.runner_hooks.get(runner)
    extra: Callable[[], dict] = dict
    with contextlib.ExitStack() as stack:
        if hook and pending:
            stage, extra = stack.enter_context(_load(hook)(stage, address=address, progress=progress))
        try:
            all_stats = run(stage, tasks, out, ledger_dir, address=address, workers=workers, progress=progress)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise StorageFull(disk_full_message(stage.name, out)) from err
            raise
        extras = extra()
    failures = [s["failed"] for s in all_stats if "failed" in s]
    if any(_ENOSPC in f["error"] for f in failures):
        raise StorageFull(disk_full_message(stage.name, out))
    if failures:
        from wit.distributed.shuffle import GlobalStepError

        first = failures[0]
        raise GlobalStepError(first["step"], first["input"], first["error"], failures)
    report = StageReport(stage.name, runner=runner)
    for s in sorted(all_stats, key=lambda s: s["index"]):
        report.add(s)
    report.seconds = time.perf_counter() - t0
    report.extra = extras
    log.info("%s: %s", stage.name, report.as_dict())
    return report
