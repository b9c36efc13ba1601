"""Runners schedule a stage's tasks; they know nothing of records.

``run_stage(stage, inputs, out, runner="local"|"ray")`` runs one task per input file, skipping
tasks whose completion marker exists, and returns a StageReport. Both runners call the same
``run_task`` (wit/runners/task.py), so a stage gives identical output under either.
"""

from __future__ import annotations

from wit.runners.task import StageReport, run_stage

__all__ = ["StageReport", "run_stage"]
