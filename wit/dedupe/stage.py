"""Dedupe as a chain of jobs: describe (per part) -> near-duplicate pre-pass (global) -> drop (per part).

1. ``DescribeStage`` takes each image's pixel hash, pHash, mirror image's pHash and centre-region
   pHashes from the columns download wrote (decoding the stored JPEG only for rows without them, and
   for embeddings when those are on) and looks them up in the eval index; it writes
   ``OUT/_descriptors/_desc-NNNNN.parquet`` (no ledger rows: it drops nothing).
2. ``near_duplicates`` reads all descriptors, orders rows by uid and marks every row that has an
   identical pixel hash or a pHash within ``within_threshold`` of an earlier row: the first of
   each group is kept (multi-index hashing, exact). Written to ``OUT/_near_duplicates.parquet``.
3. ``DedupeStage`` (ledger stage ``dedupe``) drops eval copies as ``eval_duplicate:<set>:<item>``
   and in-set duplicates as ``near_duplicate``; survivors carry ``phash`` and ``pixel_sha256``.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit import schemas
from wit.dedupe import mih
from wit.dedupe.descriptors import centre_phash_batch, phash64_batch, pixel_hash
from wit.io import folders
from wit.stage import BatchResult, Stage

log = logging.getLogger(__name__)

CORE = ("pixel_sha256", "phash", "phash_flip")
CENTRE = ("phash_centre", "phash_centre_flip")
DESCRIPTORS = pa.schema([("uid", pa.string()), ("pixel_sha256", pa.string()), ("phash", pa.uint64()),
                         ("eval_match", pa.string()), ("eval_match_by", pa.string()), ("error", pa.string())])
NEAR_DUPS = "_near_duplicates.parquet"


def descriptors_dir(out: str) -> str:
    return folders.join(out, "_descriptors")


def descriptor_url(out: str, index: int) -> str:
    return folders.join(descriptors_dir(out), f"_desc-{index:05d}.parquet")


@dataclass
class DescribeStage(Stage):
    """Descriptors of every image plus its nearest eval image (within the per-set thresholds).

    Matching order: identical pixels, then the whole-image pHash (and its mirror's) against the image,
    crop and rotation rows, then the centre-region pHash, then (when the index holds them) the
    open_clip embedding. ``eval_match_by`` records which descriptor matched.
    """

    index_dir: str | None = None
    threshold: int = 10
    thresholds: dict[str, int] = field(default_factory=dict)
    match_flips: bool = True
    centre_hash: bool = True
    embeddings: bool = True
    embed_threshold: float | None = None
    embed_thresholds: dict[str, float] = field(default_factory=dict)
    embed_batch: int = 64
    trim_borders: bool = True  # rows decoded anyway (embeddings on) also match their border-trimmed pHash
    out: str = ""
    name: str = "dedupe_describe"
    output_schema = DESCRIPTORS
    batch_rows: int = 1024

    def setup(self) -> None:
        from wit.dedupe.detector import embedder_for_index
        from wit.dedupe.index import EvalIndex

        self.index = EvalIndex.load(self.index_dir) if self.index_dir else None
        self.embedder = None
        self.use_centre = bool(self.centre_hash and self.index is not None and (self.index.variants == "centre").any())
        if self.index is None:
            return
        if self.index.embeddings is not None and self.embeddings:
            m = self.index.model
            self.embedder = embedder_for_index(m, self.embed_batch, dim=self.index.embeddings.shape[1])
            default = m.get("threshold", 0.95) if self.embed_threshold is None else self.embed_threshold
            self.embed_per_set = {s: self.embed_thresholds.get(s, default) for s in set(self.index.sets.tolist())}
        else:
            log.info("dedupe: embedding matching off (%s)", "disabled" if self.index.embeddings is not None
                     else "the eval index holds no embeddings")

    @property
    def _needed(self) -> tuple[str, ...]:
        """Download's columns this configuration reads (a row missing any of them is decoded)."""
        return CORE + CENTRE if self.use_centre else CORE

    def read_task(self, path: str):
        """uid and download's descriptor columns; the JPEG too when some row lacks one of the needed
        columns (input written before download stored them) or embeddings need pixels."""
        import fsspec
        import pyarrow.parquet as pq

        with fsspec.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            have = [n for n in CORE + CENTRE if n in pf.schema_arrow.names]
            if self.embedder is None:
                t = pf.read(columns=["uid"] + have)
                if all(n in have and t.column(n).null_count == 0 for n in self._needed):
                    for a in range(0, t.num_rows, self.batch_rows):
                        yield t.slice(a, self.batch_rows)
                    return
            for rb in pf.iter_batches(batch_size=self.batch_rows, columns=["uid", "jpg"] + have):
                yield pa.Table.from_batches([rb])

    def process_batch(self, batch: pa.Table) -> BatchResult:
        n = batch.num_rows
        cols = {name: batch.column(name).to_pylist() if name in batch.column_names else [None] * n
                for name in CORE + CENTRE}
        jpgs = batch.column("jpg").to_pylist() if "jpg" in batch.column_names else [None] * n
        px, ph, phf, err, imgs = [], [], [], [], []
        centre = [(c, cf) if c is not None and cf is not None else None
                  for c, cf in zip(cols["phash_centre"], cols["phash_centre_flip"])]
        for i, (a, b, c, data) in enumerate(zip(cols["pixel_sha256"], cols["phash"], cols["phash_flip"], jpgs)):
            have = a is not None and b is not None and c is not None
            need_img = self.embedder is not None or not have or (self.use_centre and centre[i] is None)
            img = _decode(data) if data is not None and need_img else None
            imgs.append(img)
            if not have and img is not None:  # no descriptors from download: take them from the stored JPEG
                a, (b, c) = pixel_hash(img), (int(v[0]) for v in phash64_batch([img], with_flip=True))
            elif not have:
                a, b, c = "", 0, 0
            px.append(a), ph.append(b), phf.append(c), err.append("" if have or img is not None else "decode_failed")
        match, by = [""] * n, [""] * n
        if self.index is not None and len(self.index) and n:
            self._match(px, ph, phf, centre, imgs, err, match, by)
        kept = pa.table({"uid": batch.column("uid"), "pixel_sha256": pa.array(px, pa.string()),
                         "phash": pa.array(ph, pa.uint64()), "eval_match": pa.array(match, pa.string()),
                         "eval_match_by": pa.array(by, pa.string()), "error": pa.array(err, pa.string())},
                        schema=DESCRIPTORS)
        return BatchResult(kept=kept)

    def _match(self, px, ph, phf, centre, imgs, err, match, by) -> None:
        """Fill ``match`` (set:item) and ``by`` (descriptor) for rows that have an eval copy.

        ``centre`` holds download's (centre pHash, mirror's) per row, None where the row has none:
        those are computed from the decoded stored JPEG."""
        index = self.index
        per_set = {s: self.thresholds.get(s, self.threshold) for s in set(index.sets.tolist())}

        def nearest(hashes, flips, region, label):
            m = index.query(np.array(hashes, np.uint64), per_set, region=region)
            dist, idx = m.distance.astype(np.int32), m.index
            how = np.full(len(idx), label, dtype=object)
            if self.match_flips:
                # mirror images against the unaltered rows only: a flipped crop or rotation is a double
                # edit, and searching mirrors against 27 variants per image doubles the false matches
                mf = index.query(np.array(flips, np.uint64), per_set, region=region, variants=("image", "centre"))
                better = mf.distance < dist
                dist, idx, how = (np.where(better, mf.distance, dist), np.where(better, mf.index, idx),
                                  np.where(better, label + "_flip", how))
            return idx, how

        idx, how = nearest(ph, phf, "full", "phash")
        found = [(j, f"{h}:{index.variants[j]}") if j >= 0 else None for j, h in zip(idx.tolist(), how)]
        for i, j in enumerate(index.exact(px).tolist()):
            if j >= 0:
                found[i] = (j, "exact")
        open_rows = [i for i in range(len(found)) if found[i] is None and not err[i]]
        if self.use_centre and open_rows:
            todo = [i for i in open_rows if centre[i] is None and imgs[i] is not None]
            if todo:
                ch, chf = centre_phash_batch([imgs[i] for i in todo], with_flip=True)
                centre = list(centre)
                for i, c, cf in zip(todo, ch.tolist(), chf.tolist()):
                    centre[i] = (c, cf)
            rows = [i for i in open_rows if centre[i] is not None]
            cidx, chow = nearest([centre[i][0] for i in rows], [centre[i][1] for i in rows], "centre", "centre")
            for i, j, h in zip(rows, cidx.tolist(), chow):
                if j >= 0:
                    found[i] = (j, h)
        with_pixels = [i for i in open_rows if found[i] is None and imgs[i] is not None]
        if self.trim_borders and with_pixels:
            from wit.dedupe.borders import trim_border

            trimmed = {i: t for i in with_pixels if (t := trim_border(imgs[i])) is not imgs[i]}
            if trimmed:
                th, thf = phash64_batch(list(trimmed.values()), with_flip=True)
                tidx, thow = nearest(th.tolist(), thf.tolist(), "full", "trimmed")
                for i, j, h in zip(trimmed, tidx.tolist(), thow):
                    if j >= 0:
                        found[i] = (j, f"{h}:{index.variants[j]}")
            with_pixels = [i for i in with_pixels if found[i] is None]
        if self.embedder is not None and with_pixels:
            m = index.query_embeddings(self.embedder.embed([imgs[i] for i in with_pixels]), self.embed_per_set)
            for i, j in zip(with_pixels, m.index.tolist()):
                if j >= 0:
                    found[i] = (j, "embedding")
        for i, f in enumerate(found):
            if f is not None and not err[i]:
                match[i], by[i] = f"{index.sets[f[0]]}:{index.items[f[0]]}", f[1]

    def write_output(self, kept: pa.Table, out: str, index: int) -> int:
        folders.write_parquet(descriptor_url(self.out, index), kept)
        return kept.num_rows


def _decode(data: bytes):
    """The decoded image, or None when it does not decode."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img
    except Exception:  # noqa: BLE001 - any decoder failure is a value: no pixels for this row
        return None


def near_duplicates(out: str, threshold: int, method: str = "auto") -> pa.Table:
    """(uid, dup_of) for every row with an earlier (by uid) identical or pHash-near row; cached in OUT."""
    target = folders.join(out, NEAR_DUPS)
    if folders.exists(target):
        return folders.read_parquet([target])
    fs, path = folders.fs_and_path(descriptors_dir(out))
    t = folders.read_parquet(sorted(fs.glob(path + "/_desc-*.parquet")), columns=["uid", "pixel_sha256", "phash", "error"])
    t = t.filter(pc.equal(t.column("error"), "")).sort_by("uid")
    dup_of = earlier_duplicates(t.column("pixel_sha256"), t.column("phash").to_numpy().astype(np.uint64),
                                threshold, method=method)
    sel = pa.array(np.nonzero(dup_of >= 0)[0])
    uids = t.column("uid")
    res = pa.table({"uid": uids.take(sel).cast(pa.string()),
                    "dup_of": uids.take(pa.array(dup_of[dup_of >= 0])).cast(pa.string())})
    folders.write_parquet(target, res)
    return res


def earlier_duplicates(pixel_sha256, phash: np.ndarray, threshold: int, method: str = "auto") -> np.ndarray:
    """Per row, the earlier row it duplicates, or -1: the first row with the same pixel hash, else
    the earlier row of least pHash distance within ``threshold`` (lowest row on ties).

    ``method``: "brute" (block scan, O(n^2)), "mih" (multi-index hashing) or "auto" (MIH unless
    ``mih.choose_m`` finds a scan cheaper: small n or a threshold too wide to prune)."""
    n = len(phash)
    if not isinstance(pixel_sha256, (pa.Array, pa.ChunkedArray)):
        pixel_sha256 = pa.array(pixel_sha256, pa.string())
    if isinstance(pixel_sha256, pa.ChunkedArray):
        pixel_sha256 = pixel_sha256.combine_chunks()
    codes = pc.dictionary_encode(pixel_sha256, null_encoding="encode").indices.to_numpy(zero_copy_only=False)
    # unique's return_index is each code's first position
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    first = first[inverse]
    by_pixels = np.where(first != np.arange(n), first, -1)
    threshold = min(int(threshold), 64)  # wider matches everything anyway
    if method == "auto":
        method = "mih" if mih.choose_m(n, threshold) is not None else "brute"
    by_phash = _earlier_phash_mih(phash, threshold) if method == "mih" else _earlier_phash_brute(phash, threshold)
    return np.where(by_pixels >= 0, by_pixels, by_phash)


def _earlier_phash_brute(ph: np.ndarray, threshold: int, cells: int = 1 << 24) -> np.ndarray:
    """Reference scan: each block of rows against every row before its end, ~``cells`` pairs at a time."""
    n = len(ph)
    ph = np.asarray(ph, dtype=np.uint64)
    dup_of = np.full(n, -1, dtype=np.int64)
    block = max(1, min(2048, cells // max(n, 1)))
    for a in range(0, n, block):
        b = min(a + block, n)
        d = np.bitwise_count(ph[a:b, None] ^ ph[None, :b]).astype(np.int16)
        d[np.triu_indices(b - a, k=a, m=b)] = 99  # only j < i counts
        j = d.argmin(axis=1)
        hit = d[np.arange(b - a), j] <= threshold
        dup_of[a:b][hit] = j[hit]
    return dup_of


def _earlier_phash_mih(ph: np.ndarray, threshold: int) -> np.ndarray:
    """``_earlier_phash_brute`` by multi-index hashing: same rows, ties included, sublinear per row."""
    n = len(ph)
    if n == 0 or threshold < 0:
        return np.full(n, -1, dtype=np.int64)
    m = mih.choose_m(n, threshold) or mih.M_CHOICES[-1]
    best, _ = mih.MultiIndex(ph, m).earlier_nearest(threshold)
    return best


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
        for f in schemas.DESCRIPTOR_FIELDS:  # input written before download stored them
            if f.name not in kept.column_names:
                kept = kept.append_column(f, pa.nulls(kept.num_rows, f.type))
        drop = [i for i, r in enumerate(reasons) if r]
        return BatchResult(kept=kept, dropped=BatchResult.drops([uids[i] for i in drop], [reasons[i] for i in drop]))


def run_dedupe(inputs: list[str], out: str, index_dir: str | None, cfg, **runner_kwargs) -> dict:
    """The three jobs in order; each resumes on its own (markers, a cached pre-pass file)."""
    from wit.runners import run_stage

    ledger_dir = runner_kwargs.pop("ledger_dir", None)
    describe = DescribeStage(index_dir=index_dir, threshold=cfg.phash_threshold, thresholds=dict(cfg.thresholds),
                             match_flips=cfg.match_flips, centre_hash=cfg.centre_hash,
                             embed_threshold=cfg.embed_threshold, embed_thresholds=dict(cfg.embed_thresholds),
                             embed_batch=cfg.embed_batch, out=out)
    d = run_stage(describe, inputs, descriptors_dir(out), ledger_dir=None, **runner_kwargs)
    by = matched_by(out)
    nd = near_duplicates(out, cfg.within_threshold) if cfg.within_dataset else None
    rep = run_stage(DedupeStage(out=out), inputs, out, ledger_dir=ledger_dir, **runner_kwargs).as_dict()
    rep["describe_seconds"] = round(d.seconds, 3)
    rep["near_duplicates"] = nd.num_rows if nd is not None else 0
    rep["eval_matched_by"] = by
    log.info("dedupe: eval copies by descriptor %s", by)
    return rep


def matched_by(out: str) -> dict[str, int]:
    """How many eval copies each descriptor found (exact, phash:<variant>, centre, embedding, ...)."""
    fs, path = folders.fs_and_path(descriptors_dir(out))
    parts = sorted(fs.glob(path + "/_desc-*.parquet"))
    if not parts:
        return {}
    t = folders.read_parquet(parts, columns=["eval_match_by", "error"])
    return dict(sorted(Counter(b for b, e in zip(t.column("eval_match_by").to_pylist(), t.column("error").to_pylist())
                               if b and not e).items()))
