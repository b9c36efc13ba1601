"""The in-process runner: tasks one after another in this process (tests, small jobs)."""

from __future__ import annotations

from tqdm.auto import tqdm

from wit.runners.task import run_task
from wit.stage import Stage


def run_local(stage: Stage, tasks: list[tuple[int, str]], out: str, ledger_dir: str | None, progress: bool = True,
              *, address: str | None = None, workers: int | None = None) -> list[dict]:
    """Run every task in order in this process (``address`` and ``workers`` do not apply)."""
    stage.setup()
    try:
        return [
            run_task(stage, i, path, out, ledger_dir)
            for i, path in tqdm(tasks, desc=stage.name, unit="task", disable=not progress, leave=False)
        ]
    finally:
        stage.teardown()
