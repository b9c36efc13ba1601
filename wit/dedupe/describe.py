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

from wit.dedupe.matcher import thread_map
from wit.imagehash.descriptors import phash64_batch, pixel_hash
from wit.io import folders
from wit.stage import BatchResult, Stage

log = logging.getLogger(__name__)

CORE = ("pixel_xxh3", "phash", "phash_flip")
CENTRE = ("phash_centre", "phash_centre_flip")
TRIMMED = "phash_trimmed"  # null where the image has no edge band: never a reason to decode
DESCRIPTORS = pa.schema([("uid", pa.string()), ("pixel_xxh3", pa.string()), ("phash", pa.uint64()),
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

    The matching is ``wit.dedupe.matcher.CopyMatcher``'s (the overlap analysis runs the same one);
    ``eval_match_by`` records which descriptor matched.
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
        from wit.dedupe.index import EvalIndex
        from wit.dedupe.matcher import CopyMatcher

        self.index = EvalIndex.load(self.index_dir) if self.index_dir else None
        self.matcher = self.embedder = None
        self.use_centre = self.pixels = False
        if self.index is None:
            return
        self.matcher = CopyMatcher(self.index, self.threshold, self.thresholds, self.match_flips, self.centre_hash,
                                   self.trim_borders, self.embeddings, self.embed_threshold, self.embed_thresholds,
                                   self.embed_batch)
        self.embedder, self.use_centre = self.matcher.embedder, self.matcher.use_centre
        self.pixels = self.matcher.needs_pixels  # embeddings or keypoints: every image is decoded

    @property
    def _needed(self) -> tuple[str, ...]:
        """Download's columns this configuration reads (a row missing any of them is decoded)."""
        return CORE + CENTRE if self.use_centre else CORE

    def read_task(self, path: str):
        """uid and download's descriptor columns; the JPEG too when some row lacks one of the needed
        columns (input written before download stored them) or embeddings or keypoints need pixels."""
        import fsspec
        import pyarrow.parquet as pq

        with fsspec.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            have = [n for n in CORE + CENTRE + (TRIMMED,) if n in names]
            missing = [c for c in ("uid", "jpg") if c not in names]
            if "uid" in missing or (missing and (self.pixels or set(CORE) - set(have))):
                raise ValueError(f"{path}: no column {missing[0]!r}: dedupe reads downloaded images "
                                 f"(wit download output), not {', '.join(names[:6])}")
            if not self.pixels:
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
        # every row's pixels (embeddings, keypoints, histograms): decoded on the matcher's threads
        decoded = thread_map(lambda d: _decode(d) if d is not None else None, jpgs,
                             self.matcher.threads) if self.pixels else None
        for i, (a, b, c, data) in enumerate(zip(cols["pixel_xxh3"], cols["phash"], cols["phash_flip"], jpgs)):
            have = a is not None and b is not None and c is not None
            need_img = self.pixels or not have or (self.use_centre and centre[i] is None)
            img = decoded[i] if decoded is not None else _decode(data) if data is not None and need_img else None
            imgs.append(img)
            if not have and img is not None:  # no descriptors from download: take them from the stored JPEG
                a, (b, c) = pixel_hash(img), (int(v[0]) for v in phash64_batch([img], with_flip=True))
            elif not have:
                a, b, c = "", 0, 0
            px.append(a), ph.append(b), phf.append(c), err.append("" if have or img is not None else "decode_failed")
        match, by = [""] * n, [""] * n
        if self.matcher is not None:
            for i, f in enumerate(self.matcher.match(px, ph, phf, centre, imgs, err, trimmed)):
                if f is not None:
                    match[i], by[i] = f"{self.matcher.index.sets[f[0]]}:{self.matcher.index.items[f[0]]}", f[1]
        kept = pa.table({"uid": batch.column("uid"), "pixel_xxh3": pa.array(px, pa.string()),
                         "phash": pa.array(ph, pa.uint64()), "eval_match": pa.array(match, pa.string()),
                         "eval_match_by": pa.array(by, pa.string()), "error": pa.array(err, pa.string())},
                        schema=DESCRIPTORS)
        return BatchResult(kept=kept)

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
