"""Runners schedule a stage's tasks; they know nothing of records.

``run_stage(stage, inputs, out, runner="local"|"ray")`` runs one task per input file, skipping
tasks whose completion marker exists, and returns a StageReport. Every runner calls the same
``run_task`` (wit/runners/task.py), so a stage gives identical output under each.

A runner is a function ``run(stage, tasks, out, ledger_dir, *, address, workers, progress) -> [stats]``
named in ``RUNNERS``; it is imported only when chosen, so nothing here imports ray.
"""

from __future__ import annotations

from wit.runners.dispatch import RUNNERS, StageReport, get_runner, run_stage

__all__ = ["RUNNERS", "StageReport", "get_runner", "run_stage"]
