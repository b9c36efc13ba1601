"""Pipeline steps `balance` (before download, cap t x oversample) and `balance_final` (after dedupe, cap t)."""

from __future__ import annotations

from wit.balance.run import balance_folder
from wit.io import folders
from wit.match.run import ENTRY_COUNTS_FILE


def counts_url(ctx, counts: str) -> str | None:
    """``pool``: the match step's entry counts; ``recount``: None (recount the input); else a path."""
    if counts == "pool":
        return folders.join(ctx.folder("match"), ENTRY_COUNTS_FILE)
    return None if counts == "recount" else counts


def run_step(ctx) -> dict:
    cfg = ctx.spec.balance
    return balance_folder(ctx.folder("match"), ctx.folder("balance"), t=cfg.t, oversample=cfg.oversample,
                          mode=cfg.mode, seed=cfg.seed, name="balance", counts_url=counts_url(ctx, cfg.counts),
                          **ctx.runner_kwargs())


def run_final_step(ctx) -> dict:
    cfg = ctx.spec.balance_final
    return balance_folder(ctx.folder("dedupe"), ctx.folder("balance_final"), t=cfg.t, oversample=cfg.oversample,
                          mode=cfg.mode, seed=cfg.seed, name="balance_final", counts_url=counts_url(ctx, cfg.counts),
                          **ctx.runner_kwargs())
