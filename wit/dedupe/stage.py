"""Dedupe as a chain of jobs: describe (per part) -> near-duplicate pre-pass (global) -> drop (per part).

1. ``DescribeStage`` takes each image's pixel hash, pHash and mirror image's pHash from the columns
   download wrote (decoding the stored JPEG only for rows without them) and looks them up in the eval index; it writes ``OUT/_descriptors/_desc-NNNNN.parquet``
   (no ledger rows: it drops nothing).
2. ``near_duplicates`` reads all descriptors, orders rows by uid and marks every row that has an
   identical pixel hash or a pHash within ``within_threshold`` of an earlier row: the first of
   each group is kept. Written to ``OUT/_near_duplicates.parquet``.
3. ``DedupeStage`` (ledger stage ``dedupe``) drops eval copies as ``eval_duplicate:<set>:<item>``
   and in-set duplicates as ``near_duplicate``; survivors carry ``phash`` and ``pixel_sha256``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit import schemas
from wit.dedupe.descriptors import describe_bytes
from wit.io import folders
from wit.stage import BatchResult, Stage

log = logging.getLogger(__name__)

DESCRIPTORS = pa.schema([("uid", pa.string()), ("pixel_sha256", pa.string()), ("phash", pa.uint64()),
                         ("eval_match", pa.string()), ("error", pa.string())])
NEAR_DUPS = "_near_duplicates.parquet"


def descriptors_dir(out: str) -> str:
    return folders.join(out, "_descriptors")


def descriptor_url(out: str, index: int) -> str:
    return folders.join(descriptors_dir(out), f"_desc-{index:05d}.parquet")


@dataclass
class DescribeStage(Stage):
    """Descriptors of every image plus its nearest eval image (within the per-set threshold)."""

    index_dir: str | None = None
    threshold: int = 10
    thresholds: dict[str, int] = field(default_factory=dict)
    match_flips: bool = True
    out: str = ""
    name: str = "dedupe_describe"
    output_schema = DESCRIPTORS
    batch_rows: int = 1024

    def setup(self) -> None:
        from wit.dedupe.index import EvalIndex

        self.index = EvalIndex.load(self.index_dir) if self.index_dir else None

    def read_task(self, path: str):
        """uid and download's descriptor columns; the JPEG only when some row lacks them."""
        import fsspec
        import pyarrow.parquet as pq

        names = [f.name for f in schemas.DESCRIPTOR_FIELDS]
        with fsspec.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            have = [n for n in names if n in pf.schema_arrow.names]
            t = pf.read(columns=["uid"] + have)
            if len(have) == len(names) and all(t.column(n).null_count == 0 for n in names):
                for a in range(0, t.num_rows, self.batch_rows):
                    yield t.slice(a, self.batch_rows)
                return
            for rb in pf.iter_batches(batch_size=self.batch_rows, columns=["uid", "jpg"] + have):
                yield pa.Table.from_batches([rb])

    def process_batch(self, batch: pa.Table) -> BatchResult:
        n = batch.num_rows
        cols = {name: batch.column(name).to_pylist() if name in batch.column_names else [None] * n
                for name in ("pixel_sha256", "phash", "phash_flip")}
        jpgs = batch.column("jpg").to_pylist() if "jpg" in batch.column_names else [None] * n
        px, ph, phf, err = [], [], [], []
        for a, b, c, data in zip(cols["pixel_sha256"], cols["phash"], cols["phash_flip"], jpgs):
            if a is not None and b is not None and c is not None:
                px.append(a), ph.append(b), phf.append(c), err.append("")
                continue
            try:  # no descriptors from download: decode the stored JPEG
                a, b, c = describe_bytes(data)
                px.append(a), ph.append(b), phf.append(c), err.append("")
            except Exception:  # noqa: BLE001 - any decoder failure: the dedupe stage drops the row
                px.append(""), ph.append(0), phf.append(0), err.append("decode_failed")
        match = [""] * batch.num_rows
        if self.index is not None and len(self.index) and batch.num_rows:
            per_set = {s: self.thresholds.get(s, self.threshold) for s in set(self.index.sets.tolist())}
            exact = self.index.exact(px)
            m = self.index.query(np.array(ph, np.uint64), per_set)
            dist, idx = m.distance.astype(np.int32), m.index
            if self.match_flips:
                mf = self.index.query(np.array(phf, np.uint64), per_set)
                better = mf.distance < dist
                dist, idx = np.where(better, mf.distance, dist), np.where(better, mf.index, idx)
            idx = np.where(exact >= 0, exact, idx)
            for i, j in enumerate(idx.tolist()):
                if j >= 0 and not err[i]:
                    match[i] = f"{self.index.sets[j]}:{self.index.items[j]}"
        kept = pa.table({"uid": batch.column("uid"), "pixel_sha256": pa.array(px, pa.string()),
                         "phash": pa.array(ph, pa.uint64()), "eval_match": pa.array(match, pa.string()),
                         "error": pa.array(err, pa.string())}, schema=DESCRIPTORS)
        return BatchResult(kept=kept)

    def write_output(self, kept: pa.Table, out: str, index: int) -> int:
        folders.write_parquet(descriptor_url(self.out, index), kept)
        return kept.num_rows


def near_duplicates(out: str, threshold: int, block: int = 2048) -> pa.Table:
    """(uid, dup_of) for every row with an earlier (by uid) identical or pHash-near row; cached in OUT."""
    target = folders.join(out, NEAR_DUPS)
    if folders.exists(target):
        return folders.read_parquet([target])
    fs, path = folders.fs_and_path(descriptors_dir(out))
    t = folders.read_parquet(sorted(fs.glob(path + "/_desc-*.parquet")), columns=["uid", "pixel_sha256", "phash", "error"])
    t = t.filter(pc.equal(t.column("error"), "")).sort_by("uid")
    uids = t.column("uid").to_pylist()
    px = t.column("pixel_sha256").to_pylist()
    ph = t.column("phash").to_numpy().astype(np.uint64)
    dup_of = np.full(len(uids), -1, dtype=np.int64)
    first: dict[str, int] = {}
    for i, h in enumerate(px):
        j = first.setdefault(h, i)
        if j != i:
            dup_of[i] = j
    # Earlier rows within the threshold: compare each block against all rows before its end.
    for a in range(0, len(uids), block):
        b = min(a + block, len(uids))
        d = np.bitwise_count(ph[a:b, None] ^ ph[None, :b]).astype(np.int16)
        d[np.triu_indices(b - a, k=a, m=b)] = 99  # only j < i counts
        j = d.argmin(axis=1)
        hit = (d[np.arange(b - a), j] <= threshold) & (dup_of[a:b] < 0)
        dup_of[a:b][hit] = j[hit]
    sel = np.nonzero(dup_of >= 0)[0]
    res = pa.table({"uid": pa.array([uids[i] for i in sel], pa.string()),
                    "dup_of": pa.array([uids[dup_of[i]] for i in sel], pa.string())})
    folders.write_parquet(target, res)
    return res


@dataclass
class DedupeStage(Stage):
    """Drops eval copies and in-set near-duplicates using the descriptors written before it."""

    out: str = ""
    name: str = "dedupe"
    output_schema = schemas.DEDUPED
    batch_rows: int = 2048

    def setup(self) -> None:
        nd = folders.join(self.out, NEAR_DUPS)
        self.near = set(folders.read_parquet([nd]).column("uid").to_pylist()) if folders.exists(nd) else set()

    def begin_task(self, path: str, index: int) -> None:
        d = folders.read_parquet([descriptor_url(self.out, index)])
        self.desc = {r["uid"]: r for r in d.to_pylist()}

    def process_batch(self, batch: pa.Table) -> BatchResult:
        uids = batch.column("uid").to_pylist()
        reasons = []
        for u in uids:
            d = self.desc[u]
            reasons.append(d["error"] or (f"eval_duplicate:{d['eval_match']}" if d["eval_match"] else
                                          "near_duplicate" if u in self.near else ""))
        keep = [i for i, r in enumerate(reasons) if not r]
        kept = batch.take(pa.array(keep, pa.int64()))
        # descriptors as describe used them (download's, or decoded here for input without them)
        kept = kept.drop_columns([n for n in ("phash", "pixel_sha256") if n in kept.column_names])
        kept = kept.append_column("phash", pa.array([self.desc[uids[i]]["phash"] for i in keep], pa.uint64()))
        kept = kept.append_column("pixel_sha256", pa.array([self.desc[uids[i]]["pixel_sha256"] for i in keep],
                                                           pa.string()))
        if "phash_flip" not in kept.column_names:
            kept = kept.append_column("phash_flip", pa.nulls(kept.num_rows, pa.uint64()))
        drop = [i for i, r in enumerate(reasons) if r]
        return BatchResult(kept=kept, dropped=BatchResult.drops([uids[i] for i in drop], [reasons[i] for i in drop]))


def run_dedupe(inputs: list[str], out: str, index_dir: str | None, cfg, **runner_kwargs) -> dict:
    """The three jobs in order; each resumes on its own (markers, a cached pre-pass file)."""
    from wit.runners import run_stage

    ledger_dir = runner_kwargs.pop("ledger_dir", None)
    describe = DescribeStage(index_dir=index_dir, threshold=cfg.phash_threshold, thresholds=dict(cfg.thresholds),
                             match_flips=cfg.match_flips, out=out)
    d = run_stage(describe, inputs, descriptors_dir(out), ledger_dir=None, **runner_kwargs)
    nd = near_duplicates(out, cfg.within_threshold) if cfg.within_dataset else None
    rep = run_stage(DedupeStage(out=out), inputs, out, ledger_dir=ledger_dir, **runner_kwargs).as_dict()
    rep["describe_seconds"] = round(d.seconds, 3)
    rep["near_duplicates"] = nd.num_rows if nd is not None else 0
    return rep
