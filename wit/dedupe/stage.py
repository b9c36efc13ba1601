"""Dedupe's last job: ``DedupeStage`` (ledger stage ``dedupe``) drops eval copies as
``eval_duplicate`` (detail ``<set>:<item>``) and in-set duplicates as ``near_duplicate``; survivors carry ``phash``
and ``pixel_xxh3``. It reads what the describe job (wit/dedupe/describe.py) and the near-duplicate
pre-pass (wit/dedupe/near.py) wrote; wit/dedupe/job.py runs the three in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from wit import schemas
from wit.dedupe.describe import descriptor_url
from wit.dedupe.near import NEAR_DUPS
from wit.io import folders
from wit.stage import BatchResult, Stage


@dataclass
class DedupeStage(Stage):
    """Drops eval copies and in-set near-duplicates using the descriptors written before it."""

    out: str = ""
    name: str = "dedupe"
    output_schema = schemas.DEDUPED
    batch_rows: int = 2048

    def setup(self) -> None:
        nd = folders.join(self.out, NEAR_DUPS)
        self._near_url = nd if folders.exists(nd) else None
        self._near_all = None
        if self._near_url and "part" not in folders.parquet_schema(nd).names:  # written by an older wit
            self._near_all = set(folders.read_parquet([nd], columns=["uid"]).column("uid").to_pylist())

    def begin_task(self, path: str, index: int) -> None:
        # the pre-pass file is sorted by part: a task reads only its own rows' row groups
        if self._near_all is not None:
            self.near = self._near_all
        else:
            self.near = set(folders.read_part(self._near_url, index, ["uid"]).column("uid").to_pylist()
                            if self._near_url else ())
        d = folders.read_parquet([descriptor_url(self.out, index)])
        self.desc = {r["uid"]: r for r in d.to_pylist()}

    def process_batch(self, batch: pa.Table) -> BatchResult:
        uids = batch.column("uid").to_pylist()
        reasons, details = [], []
        for u in uids:
            d = self.desc[u]
            reasons.append(d["error"] or ("eval_duplicate" if d["eval_match"] else
                                          "near_duplicate" if u in self.near else ""))
            details.append(d["eval_match"] if reasons[-1] == "eval_duplicate" else "")
        keep = [i for i, r in enumerate(reasons) if not r]
        kept = batch.take(pa.array(keep, pa.int64()))
        # descriptors as describe used them (download's, or decoded here for input without them)
        kept = kept.drop_columns([n for n in ("phash", "pixel_xxh3") if n in kept.column_names])
        kept = kept.append_column("phash", pa.array([self.desc[uids[i]]["phash"] for i in keep], pa.uint64()))
        kept = kept.append_column("pixel_xxh3", pa.array([self.desc[uids[i]]["pixel_xxh3"] for i in keep],
                                                           pa.string()))
        for f in schemas.DESCRIPTOR_FIELDS:  # input written before download stored them
            if f.name not in kept.column_names:
                kept = kept.append_column(f, pa.nulls(kept.num_rows, f.type))
        drop = [i for i, r in enumerate(reasons) if r]
        return BatchResult(kept=kept, dropped=BatchResult.drops([uids[i] for i in drop], [reasons[i] for i in drop],
                                                                [details[i] for i in drop]))
