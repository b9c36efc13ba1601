"""Pipeline steps `balance` (before download, cap t x oversample) and `balance_final` (after dedupe, cap t)."""

from __future__ import annotations

from wit.balance.job import balance_folder
from wit.io import folders
from wit.match.job import ENTRY_COUNTS_FILE


def run_step(ctx) -> dict:
    cfg = ctx.spec.balance
    (matched,) = ctx.inputs
    return balance_folder(matched, ctx.output, t=cfg.t, oversample=cfg.oversample, mode=cfg.mode, seed=cfg.seed,
                          name="balance", counts_url=folders.join(matched, ENTRY_COUNTS_FILE), **ctx.runner_kwargs())


def run_final_step(ctx) -> dict:
    cfg = ctx.spec.balance_final
    (deduped,) = ctx.inputs
    # Counts are recomputed over the rows that survived download, filter and dedupe.
    return balance_folder(deduped, ctx.output, t=cfg.t, oversample=cfg.oversample, mode=cfg.mode, seed=cfg.seed,
                          name="balance_final", counts_url=None, **ctx.runner_kwargs())
