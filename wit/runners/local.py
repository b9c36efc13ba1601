"""The in-process runner: tasks one after another in this process (tests, small jobs)."""

from __future__ import annotations

from wit.console import StageBar
from wit.runners.task import run_task
from wit.stage import Stage


def run_local(stage: Stage, tasks: list[tuple[int, str]], out: str, ledger_dir: str | None, progress: bool = True,
              *, address: str | None = None, workers: int | None = None) -> list[dict]:
    """Run every task in order in this process (``address`` and ``workers`` do not apply)."""
    stage.setup()
    stats = []
    try:
        with StageBar(stage.name, len(tasks), enabled=progress) as bar:
            for i, path in tasks:
                stats.append(run_task(stage, i, path, out, ledger_dir))
                bar.task_done(stats[-1])
        return stats
    finally:
        stage.teardown()
