"""Pipeline steps `balance` (before download, cap t x oversample) and `balance_final` (after dedupe, cap t)."""

from __future__ import annotations

from wit.balance.job import balance_folder
from wit.io import folders
from wit.match.job import ENTRY_COUNTS_FILE


def counts_url(matched: str, counts: str) -> str | None:
    """``pool``: the match step's entry counts; ``recount``: None (recount the input); else a path."""
    if counts == "pool":
        return folders.join(matched, ENTRY_COUNTS_FILE)
    return None if counts == "recount" else counts


def run_step(ctx) -> dict:
    cfg = ctx.spec.balance
    (matched,) = ctx.inputs
    return balance_folder(matched, ctx.output, t=cfg.t, oversample=cfg.oversample, mode=cfg.mode, seed=cfg.seed,
                          name="balance", counts_url=counts_url(matched, cfg.counts), **ctx.runner_kwargs())


def run_final_step(ctx) -> dict:
    cfg = ctx.spec.balance_final
    deduped, matched = ctx.inputs
    return balance_folder(deduped, ctx.output, t=cfg.t, oversample=cfg.oversample, mode=cfg.mode, seed=cfg.seed,
                          name="balance_final", counts_url=counts_url(matched, cfg.counts), **ctx.runner_kwargs())
