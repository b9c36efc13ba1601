"""The balance stage: a map over matched (or, for the final pass, deduped) parts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from wit import schemas
from wit.balance import algorithm
from wit.io import folders
from wit.stage import BatchResult, Stage

MODES = ("metaclip", "hardcap")


def cap_of(t: int, oversample: float) -> float:
    return t * oversample


@dataclass
class BalanceStage(Stage):
    """Keeps pairs per MetaCLIP Algorithm 1 (or the hard cap); drops the rest as ``balanced_out``.

    ``counts`` is the entry-counts Parquet of the pool; ``thresholds`` (hard cap only) is the
    per-entry coin threshold from ``job.hardcap_thresholds``. With ``keep_columns`` (the final
    pass, over rows that carry images) every input column is kept and ``output_schema`` is None;
    otherwise the output is the BALANCED schema.
    """

    counts: str = ""
    t: int = 20_000
    oversample: float = 1.0
    mode: str = "metaclip"
    seed: int = 0
    thresholds: str | None = None
    name: str = "balance"
    keep_columns: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"balance: unknown mode {self.mode!r}; choose one of {MODES}")
        if self.mode == "hardcap" and not self.thresholds:
            raise ValueError("balance: hardcap mode needs the thresholds of its global pre-pass")
        self.output_schema = None if self.keep_columns else schemas.BALANCED

    @property
    def cap(self) -> float:
        return cap_of(self.t, self.oversample)

    def setup(self) -> None:
        self.lookup = algorithm.count_lookup(folders.read_parquet([self.counts]))
        self.threshold = np.full(len(self.lookup), np.inf)
        if self.mode == "hardcap":
            th = folders.read_parquet([self.thresholds])
            ids = th.column("query_id").to_numpy()
            self.threshold = np.full(max(len(self.lookup), int(ids.max()) + 1 if len(ids) else 0), np.inf)
            self.threshold[ids] = th.column("threshold").to_numpy()

    def process_batch(self, batch: pa.Table) -> BatchResult:
        uids = batch.column("uid").to_pylist()
        qids = batch.column("query_ids").combine_chunks()
        if self.mode == "metaclip":
            keep = algorithm.metaclip_keep(uids, qids, self.lookup, self.cap, self.seed)
        else:
            attributed = algorithm.attribute(qids, self.lookup)
            limit = self.threshold[np.clip(attributed, 0, len(self.threshold) - 1)]
            keep = np.ones(len(uids), bool)
            capped = np.flatnonzero(np.isfinite(limit) & (attributed >= 0))
            if len(capped):
                coins = algorithm.hardcap_coins([uids[i] for i in capped], attributed[capped], self.seed)
                keep[capped] = coins <= limit[capped]
        kept = batch.filter(pa.array(keep))
        dropped = [u for u, k in zip(uids, keep.tolist()) if not k]
        return BatchResult(kept=kept, dropped=BatchResult.drops(dropped, ["balanced_out"] * len(dropped)))
