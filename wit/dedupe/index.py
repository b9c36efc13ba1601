"""The eval-set index: exact pixel hashes and pHashes of every eval image, and fast lookups.

Eval sets come as ImageFolder dirs, webdataset tar shards, or Parquet with image bytes. The index
is a directory holding ``index.parquet`` (set, item, pixel_sha256, phash). A pHash lookup is a
brute-force Hamming scan in blocks (XOR + popcount over uint64), which at 100k eval images does
thousands of lookups per second per core with no approximation.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from wit import schemas
from wit.dedupe.descriptors import pixel_hash, phash64_batch
from wit.io import folders

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
NO_MATCH = 255
# Crops indexed beside each eval image (scale, x, y in [0, 1]): pHash alone misses crops > ~10%.
CROP_VARIANTS = tuple((s, x, y) for s in (0.85, 0.92) for y in (0, 0.5, 1) for x in (0, 0.5, 1)) + ((0.75, 0.5, 0.5),)


def crops(img, variants=CROP_VARIANTS) -> list:
    w, h = img.size
    out = []
    for s, x, y in variants:
        cw, ch = max(1, int(w * s)), max(1, int(h * s))
        left, top = int((w - cw) * x), int((h - ch) * y)
        out.append(img.crop((left, top, left + cw, top + ch)))
    return out


def iter_eval_images(path: str) -> Iterator[tuple[str, bytes]]:
    """(item, encoded bytes) of every image of an eval set, in a stable order.

    ``item`` is the path inside an ImageFolder dir, ``tarname/key.ext`` for webdataset shards,
    or ``file.parquet#row`` (or the ``key``/``item`` column) for Parquet with an image column.
    """
    p = Path(path)
    if p.is_dir() and not any(p.glob("*.tar")) and not any(p.glob("*.parquet")):
        for f in sorted(p.rglob("*")):
            if f.suffix.lower() in IMAGE_EXTS and f.is_file():
                yield f.relative_to(p).as_posix(), f.read_bytes()
        return
    files = sorted(p.glob("*.tar")) + sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    for f in files:
        if f.suffix == ".tar":
            with tarfile.open(f) as tar:
                for m in sorted(tar.getmembers(), key=lambda m: m.name):
                    if m.isfile() and Path(m.name).suffix.lower() in IMAGE_EXTS:
                        yield f"{f.name}/{m.name}", tar.extractfile(m).read()
        elif f.suffix == ".parquet":
            t = folders.read_parquet([str(f)])
            col = next((c for c in ("jpg", "image", "img", "png", "webp", "bytes") if c in t.column_names), None)
            if col is None:
                raise ValueError(f"{f}: no image column (jpg/image/img/png/webp/bytes) in {t.column_names}")
            names = next((t.column(c).to_pylist() for c in ("item", "key", "path") if c in t.column_names), None)
            for i, v in enumerate(t.column(col).to_pylist()):
                data = v.get("bytes") if isinstance(v, dict) else v  # HF datasets store {"bytes", "path"}
                yield (names[i] if names else f"{f.name}#{i}"), data
        else:
            raise ValueError(f"eval set {path}: expected an ImageFolder dir, .tar shards or .parquet")


@dataclass(frozen=True)
class Matches:
    """Per query: the nearest eval image within its set's threshold (``hit`` False if none)."""

    hit: np.ndarray  # bool
    set: np.ndarray  # object (str or None)
    item: np.ndarray  # object
    distance: np.ndarray  # int16, NO_MATCH where no hit
    index: np.ndarray  # int64, -1 where no hit


class EvalIndex:
    """pHashes + pixel hashes of eval images; ``query`` finds the nearest within a threshold."""

    def __init__(self, table: pa.Table):
        self.table = schemas.conform(table, schemas.EVAL_INDEX)
        self.sets = np.array(self.table.column("set").to_pylist(), dtype=object)
        self.items = np.array(self.table.column("item").to_pylist(), dtype=object)
        self.phashes = self.table.column("phash").to_numpy().astype(np.uint64)
        self._exact = {h: i for i, h in reversed(list(enumerate(self.table.column("pixel_sha256").to_pylist()))) if h}

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def n_images(self) -> int:
        """Eval images indexed (rows minus crop variants)."""
        return len(self._exact)

    @classmethod
    def build(cls, eval_sets: dict[str, str], batch: int = 256, crop_variants: bool = True) -> "EvalIndex":
        """Index every image of ``eval_sets`` (name -> path); with ``crop_variants``, also the
        pHashes of a few crops of each (rows with an empty pixel hash), which catches cropped copies."""
        sets, items, pxs, phs = [], [], [], []
        from PIL import Image

        for name, path in sorted(eval_sets.items()):
            buf: list = []

            def flush() -> None:
                imgs = [Image.open(io.BytesIO(b)) for _, b in buf]
                for im in imgs:
                    im.load()
                pxs.extend(pixel_hash(im) for im in imgs)
                phs.extend(phash64_batch(imgs).tolist())
                sets.extend([name] * len(buf))
                items.extend(i for i, _ in buf)
                if crop_variants:
                    for (item, _), im in zip(buf, imgs):
                        variants = crops(im.convert("RGB"))
                        phs.extend(phash64_batch(variants).tolist())
                        pxs.extend([""] * len(variants))
                        sets.extend([name] * len(variants))
                        items.extend([item] * len(variants))
                buf.clear()

            for item, data in iter_eval_images(path):
                buf.append((item, data))
                if len(buf) >= batch:
                    flush()
            if buf:
                flush()
            log.info("eval index: %s indexed (%d rows)", name, sum(1 for s in sets if s == name))
        return cls(pa.table({"set": pa.array(sets, pa.string()), "item": pa.array(items, pa.string()),
                             "pixel_sha256": pa.array(pxs, pa.string()), "phash": pa.array(phs, pa.uint64())}))

    def save(self, directory: str) -> None:
        folders.write_parquet(folders.join(directory, "index.parquet"), self.table)

    @classmethod
    def load(cls, directory: str) -> "EvalIndex":
        return cls(folders.read_parquet([folders.join(directory, "index.parquet")]))

    def exact(self, pixel_hashes: list[str]) -> np.ndarray:
        """Index of the eval image with identical pixels, or -1, per query."""
        return np.array([self._exact.get(h, -1) for h in pixel_hashes], dtype=np.int64)

    def query(self, phashes: np.ndarray, max_distance: int | dict[str, int], block: int = 256) -> Matches:
        """Nearest eval image per query pHash within ``max_distance`` (one int, or per set name)."""
        q = np.asarray(phashes, dtype=np.uint64).reshape(-1)
        n = len(q)
        if isinstance(max_distance, dict):
            thr = np.array([max_distance.get(s, -1) for s in self.sets], dtype=np.int16)
        else:
            thr = np.full(len(self), max_distance, dtype=np.int16)
        best = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, NO_MATCH, dtype=np.int16)
        if len(self) and n:
            for a in range(0, n, block):
                d = np.bitwise_count(q[a:a + block, None] ^ self.phashes[None, :]).astype(np.int16)
                d[d > thr[None, :]] = NO_MATCH
                j = d.argmin(axis=1)
                dj = d[np.arange(len(j)), j]
                hit = dj != NO_MATCH
                best[a:a + block][hit] = j[hit]
                dist[a:a + block][hit] = dj[hit]
        hit = best >= 0
        pick = np.where(hit, best, 0)
        none = np.array([None] * n, dtype=object)
        return Matches(hit, np.where(hit, self.sets[pick], none) if len(self) else none,
                       np.where(hit, self.items[pick], none) if len(self) else none, dist, best)


def build_index_cli(pairs: list[str], out: str) -> EvalIndex:
    """`NAME=PATH` pairs -> a saved index."""
    sets = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not os.path.exists(path):
            raise ValueError(f"--eval wants NAME=PATH with an existing PATH, got {pair!r}")
        sets[name] = path
    index = EvalIndex.build(sets)
    index.save(out)
    return index
