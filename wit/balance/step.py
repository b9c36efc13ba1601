"""Pipeline steps `balance` (before download, cap t x oversample) and `balance_final` (after dedupe, cap t)."""

from __future__ import annotations

from wit.balance.run import balance_folder
from wit.io import folders
from wit.match.run import ENTRY_COUNTS_FILE


def run_step(ctx) -> dict:
    cfg = ctx.spec.balance
    return balance_folder(ctx.folder("match"), ctx.folder("balance"), t=cfg.t, oversample=cfg.oversample,
                          mode=cfg.mode, seed=cfg.seed, name="balance",
                          counts_url=folders.join(ctx.folder("match"), ENTRY_COUNTS_FILE), **ctx.runner_kwargs())


def run_final_step(ctx) -> dict:
    cfg = ctx.spec.balance_final
    # Counts are recomputed over the rows that survived download, filter and dedupe.
    return balance_folder(ctx.folder("dedupe"), ctx.folder("balance_final"), t=cfg.t, oversample=cfg.oversample,
                          mode=cfg.mode, seed=cfg.seed, name="balance_final", counts_url=None,
                          **ctx.runner_kwargs())
