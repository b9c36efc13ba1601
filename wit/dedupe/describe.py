"""Dedupe's first job: each image's descriptors and its nearest eval image, written per part.

``DescribeStage`` takes each image's pixel hash, pHash, mirror image's pHash, centre-region pHashes and
pHash inside its edge bands from the columns download wrote (decoding the stored JPEG only for rows
without them, and for embeddings when those are on) and looks them up in the eval index; it writes
``OUT/_descriptors/_desc-NNNNN.parquet`` (no ledger rows: it drops nothing).
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from wit.imagehash.descriptors import centre_phash_batch, phash64_batch, pixel_hash
from wit.io import folders
from wit.stage import BatchResult, Stage

log = logging.getLogger(__name__)

CORE = ("pixel_sha256", "phash", "phash_flip")
CENTRE = ("phash_centre", "phash_centre_flip")
TRIMMED = "phash_trimmed"  # null where the image has no edge band: never a reason to decode
DESCRIPTORS = pa.schema([("uid", pa.string()), ("pixel_sha256", pa.string()), ("phash", pa.uint64()),
                         ("eval_match", pa.string()), ("eval_match_by", pa.string()), ("error", pa.string())])


def descriptors_dir(out: str) -> str:
    return folders.join(out, "_descriptors")


def descriptor_name(index: int) -> str:
    return f"_desc-{index:05d}.parquet"


_DESC_FILE = re.compile(r"_desc-(\d+)\.parquet")


def descriptor_files(out: str) -> list[str]:
    """The descriptor files under the dedupe folder ``out``, sorted (URLs for a remote folder)."""
    return folders.list_named(descriptors_dir(out), _DESC_FILE)


def descriptor_part(url: str) -> int:
    """The task index of a descriptor file (``descriptor_name``'s number)."""
    return int(_DESC_FILE.fullmatch(url.rsplit("/", 1)[-1]).group(1))


def descriptor_url(out: str, index: int) -> str:
    """Task ``index``'s descriptors under the dedupe folder ``out``."""
    return folders.join(descriptors_dir(out), descriptor_name(index))


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
    trim_borders: bool = True  # also match the pHash inside the edge bands (padding, caption bands)
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
            names = pf.schema_arrow.names
            have = [n for n in CORE + CENTRE + (TRIMMED,) if n in names]
            missing = [c for c in ("uid", "jpg") if c not in names]
            if "uid" in missing or (missing and (self.embedder is not None or set(CORE) - set(have))):
                raise ValueError(f"{path}: no column {missing[0]!r}: dedupe reads downloaded images "
                                 f"(wit download output), not {', '.join(names[:6])}")
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
        # download's inside-the-bands pHash; without the column (older input) it is taken from pixels
        trimmed = batch.column(TRIMMED).to_pylist() if TRIMMED in batch.column_names else None
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
            self._match(px, ph, phf, centre, imgs, err, match, by, trimmed)
        kept = pa.table({"uid": batch.column("uid"), "pixel_sha256": pa.array(px, pa.string()),
                         "phash": pa.array(ph, pa.uint64()), "eval_match": pa.array(match, pa.string()),
                         "eval_match_by": pa.array(by, pa.string()), "error": pa.array(err, pa.string())},
                        schema=DESCRIPTORS)
        return BatchResult(kept=kept)

    def _match(self, px, ph, phf, centre, imgs, err, match, by, trimmed=None) -> None:
        """Fill ``match`` (set:item) and ``by`` (descriptor) for rows that have an eval copy.

        ``centre`` holds download's (centre pHash, mirror's) per row, None where the row has none:
        those are computed from the decoded stored JPEG. ``trimmed`` holds download's pHash inside the
        edge bands (None: no band), or is None where the input has no such column: then rows with
        pixels are trimmed here."""
        index = self.index
        per_set = {s: self.thresholds.get(s, self.threshold) for s in set(index.sets.tolist())}

        def nearest(hashes, flips, region, label, variants=None):
            m = index.query(np.array(hashes, np.uint64), per_set, region=region, variants=variants)
            dist, idx = m.distance.astype(np.int32), m.index
            how = np.full(len(idx), label, dtype=object)
            if self.match_flips and flips is not None:
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
        if self.trim_borders:
            self._match_trimmed([i for i in open_rows if found[i] is None], imgs, trimmed, nearest, found)
        with_pixels = [i for i in open_rows if found[i] is None and imgs[i] is not None]
        if self.embedder is not None and with_pixels:
            m = index.query_embeddings(self.embedder.embed([imgs[i] for i in with_pixels]), self.embed_per_set)
            for i, j in zip(with_pixels, m.index.tolist()):
                if j >= 0:
                    found[i] = (j, "embedding")
        for i, f in enumerate(found):
            if f is not None and not err[i]:
                match[i], by[i] = f"{index.sets[f[0]]}:{index.items[f[0]]}", f[1]

    def _match_trimmed(self, rows, imgs, trimmed, nearest, found) -> None:
        """Match the pHash inside each row's edge bands: download's, else (no column, a null one from
        input written before download stored it) from the pixels where the row was decoded anyway."""
        from wit.imagehash.borders import band_box

        hashes = {i: trimmed[i] for i in rows if trimmed[i] is not None} if trimmed is not None else {}
        inside = {}
        for i in (i for i in rows if i not in hashes and imgs[i] is not None):
            grey = imgs[i].convert("L")
            if (box := band_box(np.asarray(grey))) is not None:
                inside[i] = grey.crop(box)
        if inside:
            hashes |= dict(zip(inside, phash64_batch(list(inside.values())).tolist()))
        if not hashes:
            return
        # against the image rows only, no mirror: a padded crop, turn or mirror is two edits, and the
        # inside of a screenshot's or a page's bands lies near some eval image's crop row more often
        # than a copy does (measured: benchmarks/dedupe_quality.py)
        tidx, thow = nearest(list(hashes.values()), None, "full", "trimmed", variants=("image",))
        for i, j, h in zip(hashes, tidx.tolist(), thow):
            if j >= 0:
                found[i] = (j, f"{h}:{self.index.variants[j]}")

    def write_output(self, kept: pa.Table, out: str, index: int) -> int:
        """``out/_desc-NNNNN.parquet`` (``out`` is the descriptors folder the job runs this stage into)."""
        folders.write_parquet(folders.join(out, descriptor_name(index)), kept)
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


def matched_by(out: str) -> dict[str, int]:
    """How many eval copies each descriptor found (exact, phash:<variant>, centre, embedding, ...)."""
    parts = descriptor_files(out)
    if not parts:
        return {}
    t = folders.read_parquet(parts, columns=["eval_match_by", "error"])
    return dict(sorted(Counter(b for b, e in zip(t.column("eval_match_by").to_pylist(), t.column("error").to_pylist())
                               if b and not e).items()))
