"""The eval-set index: exact pixel hashes and pHashes of every eval image, and fast lookups.

Eval sets come as ImageFolder dirs, webdataset tar shards, or Parquet with image bytes. The index
is a directory holding ``index.parquet`` (set, item, pixel_xxh3, phash, variant): one "image" row
per eval image plus "crop", "rotate", "rotate_crop" and "centre" rows, and with an open_clip model
``embeddings.parquet`` (row, embedding) + ``model.json``. A pHash lookup is exact: multi-index
hashing (``wit.imagehash.mih``) on large indexes, a brute-force XOR + popcount scan on small ones.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from wit import schemas
from wit.imagehash import mih
from wit.imagehash.descriptors import centre_phash_batch, phash64_batch, pixel_hash
from wit.io import folders, tars

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
NO_MATCH = mih.NO_MATCH
# Crops indexed beside each eval image (scale, x, y in [0, 1]): pHash alone misses crops > ~10%.
CROP_VARIANTS = tuple((s, x, y) for s in (0.85, 0.92) for y in (0, 0.5, 1) for x in (0, 0.5, 1)) + ((0.75, 0.5, 0.5),)
# Rotations indexed beside each eval image (degrees): pHash alone misses rotations beyond ~3 degrees.
ROTATIONS = (-8.0, -4.0, 4.0, 8.0)
# Bits off the threshold on rows that are not the image itself: with 8 rotations per eval image the
# chance that some variant lies near an unrelated photo grows, and true rotated copies sit at <= 8 bits
# while the nearest distractors reach 10 (benchmarks/dedupe_quality.py). Crop rows keep the full threshold.
VARIANT_MARGINS = {"rotate": 2, "rotate_crop": 2, "centre": 2, "dihedral": 2, "rotate_wide": 2,
                   "crop_large": 2, "shear": 2}
# Turns and mirrors besides the horizontal mirror (which the candidate's mirror hash covers): vertical
# flip, 90/180/270 degrees and the two diagonal mirrors.
DIHEDRAL = ("FLIP_TOP_BOTTOM", "ROTATE_90", "ROTATE_180", "ROTATE_270", "TRANSPOSE", "TRANSVERSE")
# Rotations all round (every 4 degrees but the quarter turns, which DIHEDRAL holds), each cut to the
# largest upright rectangle inside the turned picture, whatever its aspect (how AugLy's Rotate and
# RandomRotation and most editors frame a rotation). pHash tolerates ~2 degrees off a row (measured:
# 93-100 % of AugLy rotations within 10 bits at 2 degrees off), so 4-degree steps leave no gap.
WIDE_ROTATIONS = tuple(float(a) for a in range(4, 360, 4) if a % 90)
# Large crops (warp rows): half of each side, at the centre, the corners and the edge midpoints (a
# quarter of the area, like AugLy's default Crop); pHash finds crops of up to ~10-15 % per side itself,
# CROP_VARIANTS those of 15-25 %.
LARGE_CROPS = tuple((0.5, x, y) for y in (0, 0.5, 1) for x in (0, 0.5, 1))
# Shears (warp rows): factor f moves a row at height y by f * (y - h/2) pixels (axis 0, horizontal
# shear; axis 1 the same for columns), the picture's own size, black where nothing maps (how AugLy's
# Skew and an editor's shear without canvas growth frame it). pHash holds a shear within ~0.05 of a row
# (measured: 99 % of AugLy's Skew(0.5) within 8 bits of a 0.45 row, 90 % of a 0.4 row).
SHEARS = tuple((s * f, axis) for f in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7) for s in (1, -1) for axis in (0, 1))
EMBEDDINGS = "embeddings.parquet"
MODEL_JSON = "model.json"
KEYPOINTS = "keypoints.npz"  # ORB keypoints of each eval image (``--keypoints``): wit.imagehash.keypoints
SHUFFLED = "shuffled.npz"  # each eval image's pixel-shuffled copy's histogram (``--shuffled``): wit.imagehash.shuffled


def largest_upright_rect(w: float, h: float, degrees: float) -> tuple[float, float]:
    """Width and height of the largest axis-aligned rectangle inside a ``w`` x ``h`` rectangle turned
    by ``degrees``, both centred (the corner-free part of a rotated picture)."""
    a = math.radians(degrees)
    sin, cos = abs(math.sin(a)), abs(math.cos(a))
    if w <= 0 or h <= 0:
        return 0.0, 0.0
    long, short = max(w, h), min(w, h)
    if short <= 2 * sin * cos * long or abs(sin - cos) < 1e-10:
        # two corners of the rectangle touch the long sides of the turned picture
        half = short / 2
        return (half / sin, half / cos) if w >= h else (half / cos, half / sin)
    # all four corners touch: solve the two edge constraints together
    cos2 = cos * cos - sin * sin
    return (w * cos - h * sin) / cos2, (h * cos - w * sin) / cos2


def rotate_framed(img, degrees: float):
    """``img`` turned by ``degrees`` counter-clockwise on an expanded canvas, then cut to its largest
    upright corner-free rectangle (``largest_upright_rect``)."""
    from PIL import Image

    out = img.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=True)
    rw, rh = largest_upright_rect(img.width, img.height, degrees)
    cx, cy = out.width / 2, out.height / 2
    box = (int(cx - rw / 2), int(cy - rh / 2), int(cx + rw / 2), int(cy + rh / 2))
    return out.crop(box) if box[2] > box[0] and box[3] > box[1] else out


def shear(img, factor: float, axis: int):
    """``img`` sheared by ``factor`` about its centre along ``axis`` (0: rows slide sideways, 1: columns
    slide up and down), the same size, black where nothing maps."""
    from PIL import Image

    w, h = img.size
    data = (1, factor, -factor * h / 2, 0, 1, 0) if axis == 0 else (1, 0, 0, factor, 1, -factor * w / 2)
    return img.transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)


def crops(img, variants=CROP_VARIANTS) -> list:
    w, h = img.size
    out = []
    for s, x, y in variants:
        cw, ch = max(1, int(w * s)), max(1, int(h * s))
        left, top = int((w - cw) * x), int((h - ch) * y)
        out.append(img.crop((left, top, left + cw, top + ch)))
    return out


def rotate(img, degrees: float, crop: bool):
    """``img`` turned by ``degrees`` about its centre, black corners; with ``crop``, cut to the largest
    centred rectangle of the same aspect that holds no corner (how rotated web copies are often framed)."""
    from PIL import Image

    out = img.rotate(degrees, resample=Image.Resampling.BILINEAR)
    if not crop:
        return out
    w, h = img.size
    c, s = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    f = min(w / (w * c + h * s), h / (w * s + h * c))
    cw, ch = max(1, int(w * f)), max(1, int(h * f))
    left, top = (w - cw) // 2, (h - ch) // 2
    return out.crop((left, top, left + cw, top + ch))


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
            for sample in tars.shard_samples([str(f)]):
                for ext in sorted(e for e in sample if "." + e.rsplit(".", 1)[-1] in IMAGE_EXTS):
                    yield f"{f.name}/{sample['__key__']}.{ext}", sample[ext]
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
    """Per query: the nearest eval row within its set's threshold (``hit`` False if none)."""

    hit: np.ndarray  # bool
    set: np.ndarray  # object (str or None)
    item: np.ndarray  # object
    distance: np.ndarray  # int16, NO_MATCH where no hit (embeddings: 0 where hit)
    index: np.ndarray  # int64 row of the index, -1 where no hit
    similarity: np.ndarray | None = None  # float32 cosine, embedding queries only


def _describe_rows(img, crop_variants: bool, rotation_variants: bool, centre: bool,
                   dihedral: bool = False, warps: bool = False) -> tuple[list[str], list[int]]:
    """(variant, pHash) of the rows indexed for one eval image besides the image itself."""
    from PIL import Image

    rgb = img.convert("RGB")
    groups: list[tuple[str, list]] = []
    small = rgb.copy() if dihedral or warps else rgb
    if small is not rgb:
        small.thumbnail((256, 256))  # pHash sees 32 x 32: turning a thumbnail is the same hash, faster
    if dihedral:
        groups.append(("dihedral", [rgb.transpose(Image.Transpose[t]) for t in DIHEDRAL]))
        groups.append(("rotate_wide", [rotate_framed(small, a) for a in WIDE_ROTATIONS]))
    if warps:
        groups.append(("crop_large", crops(small, LARGE_CROPS)))
        groups.append(("shear", [shear(small, f, axis) for f, axis in SHEARS]))
    if crop_variants:
        groups.append(("crop", crops(rgb)))
    if rotation_variants:
        groups.append(("rotate", [rotate(rgb, a, crop=False) for a in ROTATIONS]))
        groups.append(("rotate_crop", [rotate(rgb, a, crop=True) for a in ROTATIONS]))
    variants, hashes = [], []
    for name, imgs in groups:
        variants += [name] * len(imgs)
        hashes += phash64_batch(imgs).tolist()
    if centre:
        variants.append("centre")
        hashes += centre_phash_batch([rgb]).tolist()
    return variants, hashes


class EvalIndex:
    """pHashes (image, crop, rotation and centre rows) + pixel hashes of eval images, optionally
    their open_clip embeddings; ``query``/``query_embeddings`` find the nearest within a threshold."""

    def __init__(self, table: pa.Table, embeddings: np.ndarray | None = None, embedding_rows: np.ndarray | None = None,
                 model: dict | None = None, keypoints=None, shuffled=None):
        if "pixel_sha256" in table.column_names:  # built before the pixel hash was xxh3: no exact matches
            log.warning("eval index with sha256 pixel hashes: exact-pixel matching off (pHash still finds "
                        "identical copies); rebuild it with `wit dedupe index` to turn it on")
            i = table.column_names.index("pixel_sha256")
            px = table.column(i).to_pylist()
            if "variant" not in table.column_names:
                table = table.append_column("variant", pa.array(["image" if h else "crop" for h in px], pa.string()))
            table = table.set_column(i, "pixel_xxh3", pa.array([""] * len(px), pa.string()))
        if "variant" not in table.column_names:  # indexes built before variants were named
            px = table.column("pixel_xxh3").to_pylist()
            table = table.append_column("variant", pa.array(["image" if h else "crop" for h in px], pa.string()))
        self.table = schemas.conform(table, schemas.EVAL_INDEX)
        self.sets = np.array(self.table.column("set").to_pylist(), dtype=object)
        self.items = np.array(self.table.column("item").to_pylist(), dtype=object)
        self.variants = np.array(self.table.column("variant").to_pylist(), dtype=object)
        self.phashes = self.table.column("phash").to_numpy().astype(np.uint64)
        self._exact = {h: i for i, h in reversed(list(enumerate(self.table.column("pixel_xxh3").to_pylist()))) if h}
        centre = self.variants == "centre"
        self._region_rows = {"full": np.nonzero(~centre)[0], "centre": np.nonzero(centre)[0]}
        self.embeddings = embeddings
        self.embedding_rows = embedding_rows
        self.model = model or {}
        self.keypoints = keypoints  # wit.imagehash.keypoints.KeypointIndex (owners: "image" rows) or None
        self.shuffled = shuffled  # wit.imagehash.shuffled.ShuffleIndex (owners: "image" rows) or None
        self._selections: dict = {}
        self._column_codes: dict = {}
        self._tables: dict = {}

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def n_images(self) -> int:
        """Eval images indexed (rows minus variants)."""
        return int((self.variants == "image").sum())

    def rows_per_image(self) -> dict[str, float]:
        """Mean rows per eval image, per variant: the lookup cost."""
        n = max(1, self.n_images)
        names, counts = np.unique(self.variants.astype(str), return_counts=True)
        return {str(k): round(int(c) / n, 2) for k, c in zip(names, counts)}

    @classmethod
    def build(cls, eval_sets: dict[str, str], batch: int = 256, crop_variants: bool = True,
              rotation_variants: bool = True, centre: bool = True, embedder=None,
              dihedral_variants: bool = False, warp_variants: bool = False, keypoints: bool = False,
              shuffled: bool = False) -> "EvalIndex":
        """Index every image of ``eval_sets`` (name -> path). Besides each image's pixel hash and pHash:
        with ``crop_variants`` the pHashes of 19 crops, with ``rotation_variants`` of 8 small rotations
        (black corners, and cropped to the unrotated area), with ``centre`` the centre-region pHash,
        with ``dihedral_variants`` 6 turns/mirrors (DIHEDRAL) and 88 rotations all round, framed to
        their corner-free rectangle (WIDE_ROTATIONS), with ``warp_variants`` 9 crops of half of each side
        (LARGE_CROPS) and 24 shears (SHEARS);
        with an ``embedder`` (``wit.dedupe.embed.Embedder``) each image's L2-normalised embedding;
        with ``keypoints`` each image's ORB keypoints (``wit.imagehash.keypoints``), with ``shuffled``
        the colour histogram of its pixel-shuffled copy as download would store it
        (``wit.imagehash.shuffled``)."""
        from PIL import Image

        from wit.imagehash.keypoints import EVAL_KEYPOINTS, KeypointIndex, orb_features
        from wit.imagehash.shuffled import BINS, ShuffleIndex, expected_histogram

        sets, items, pxs, phs, variants = [], [], [], [], []
        emb_parts, emb_rows = [], []
        kp_features = []
        shuffle_rows, shuffle_hists = [], []
        for name, path in sorted(eval_sets.items()):
            buf: list = []
            n_before = len(sets)

            def flush() -> None:
                imgs = [Image.open(io.BytesIO(b)) for _, b in buf]
                for im in imgs:
                    im.load()
                if embedder is not None:
                    emb_parts.append(embedder.embed(imgs))
                for (item, _), im, h in zip(buf, imgs, phash64_batch(imgs).tolist()):
                    emb_rows.append(len(sets))
                    if keypoints:
                        kp_features.append((len(sets), orb_features(im, EVAL_KEYPOINTS)))
                    if shuffled:
                        shuffle_rows.append(len(sets))
                        shuffle_hists.append(expected_histogram(im, _stored_jpeg))
                    v, hs = _describe_rows(im, crop_variants, rotation_variants, centre, dihedral_variants,
                                           warp_variants)
                    sets.extend([name] * (1 + len(v)))
                    items.extend([item] * (1 + len(v)))
                    pxs.extend([pixel_hash(im)] + [""] * len(v))
                    phs.extend([h] + hs)
                    variants.extend(["image"] + v)
                buf.clear()

            for item, data in iter_eval_images(path):
                buf.append((item, data))
                if len(buf) >= batch:
                    flush()
            if buf:
                flush()
            log.info("eval index: %s indexed (%d rows)", name, len(sets) - n_before)
        table = pa.table({"set": pa.array(sets, pa.string()), "item": pa.array(items, pa.string()),
                          "pixel_xxh3": pa.array(pxs, pa.string()), "phash": pa.array(phs, pa.uint64()),
                          "variant": pa.array(variants, pa.string())})
        kp = KeypointIndex.build(kp_features) if keypoints else None
        sh = ShuffleIndex(np.array(shuffle_hists, np.float16).reshape(-1, BINS ** 3), shuffle_rows) if shuffled else None
        if embedder is None:
            return cls(table, keypoints=kp, shuffled=sh)
        emb = np.concatenate(emb_parts) if emb_parts else np.zeros((0, embedder.dim), np.float32)
        if hasattr(embedder, "calibrate_to"):  # wit's detector: its threshold for this index's size
            embedder.calibrate_to(emb)
        return cls(table, emb, np.array(emb_rows, np.int64), embedder.describe(), keypoints=kp, shuffled=sh)

    def save(self, directory: str) -> None:
        """Into ``directory``; files an earlier index left there and this one lacks (embeddings, model,
        keypoints, shuffled-copy histograms) are removed, or ``load`` would pair them with these rows.

        ``index.parquet`` goes first and comes back last, every file atomically: a save killed part-way
        leaves no index (the pipeline's dedupe step then builds it again), never rows with another
        index's parts or without the parts it was built with."""
        main = folders.join(directory, "index.parquet")
        stale = (["index.parquet"] + ([KEYPOINTS] if self.keypoints is None else [])
                 + ([SHUFFLED] if self.shuffled is None else [])
                 + ([EMBEDDINGS, MODEL_JSON] if self.embeddings is None else []))
        for name in stale:
            if folders.exists(folders.join(directory, name)):
                fs, path = folders.fs_and_path(folders.join(directory, name))
                fs.rm(path)
        for name, part in ((KEYPOINTS, self.keypoints), (SHUFFLED, self.shuffled)):
            if part is not None:
                folders.atomic_write_bytes(folders.join(directory, name), part.to_bytes())
        if self.embeddings is not None:
            dim = self.embeddings.shape[1]
            flat = pa.array(self.embeddings.astype(np.float32).reshape(-1), pa.float32())
            folders.write_parquet(folders.join(directory, EMBEDDINGS),
                                  pa.table({"row": pa.array(self.embedding_rows, pa.int64()),
                                            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim)}))
            folders.atomic_write_bytes(folders.join(directory, MODEL_JSON), json.dumps(self.model, indent=2).encode())
        folders.write_parquet(main, self.table)

    @classmethod
    def load(cls, directory: str) -> "EvalIndex":
        table = folders.read_parquet([folders.join(directory, "index.parquet")])
        from wit.imagehash.keypoints import KeypointIndex
        from wit.imagehash.shuffled import ShuffleIndex

        kp = _load_part(directory, KEYPOINTS, KeypointIndex, table.num_rows, "--keypoints")
        sh = _load_part(directory, SHUFFLED, ShuffleIndex, table.num_rows, "--shuffled")
        if not folders.exists(folders.join(directory, EMBEDDINGS)):
            return cls(table, keypoints=kp, shuffled=sh)
        e = folders.read_parquet([folders.join(directory, EMBEDDINGS)])
        col = e.column("embedding").combine_chunks()
        emb = col.values.to_numpy().reshape(len(col), col.type.list_size).astype(np.float32)
        fs, path = folders.fs_and_path(folders.join(directory, MODEL_JSON))
        with fs.open(path) as f:
            model = json.load(f)
        return cls(table, emb, e.column("row").to_numpy(), model, keypoints=kp, shuffled=sh)

    def exact(self, pixel_hashes: list[str]) -> np.ndarray:
        """Index of the eval image with identical pixels, or -1, per query."""
        return np.array([self._exact.get(h, -1) for h in pixel_hashes], dtype=np.int64)

    def _matches(self, best: np.ndarray, dist: np.ndarray, similarity: np.ndarray | None = None) -> Matches:
        hit = best >= 0
        n = len(best)
        pick = np.where(hit, best, 0)
        none = np.array([None] * n, dtype=object)
        return Matches(hit, np.where(hit, self.sets[pick], none) if len(self) else none,
                       np.where(hit, self.items[pick], none) if len(self) else none, dist, best, similarity)

    def query(self, phashes: np.ndarray, max_distance: int | dict[str, int], block: int = 256,
              region: str = "full", margins: dict[str, int] | None = None,
              variants: tuple[str, ...] | None = None, method: str = "auto") -> Matches:
        """Nearest eval row per query pHash within ``max_distance`` (one int, or per set name).

        ``region`` "full" searches the image, crop and rotation rows with whole-image pHashes;
        "centre" searches the centre rows with ``centre_phash_batch`` hashes. ``margins`` (variant ->
        bits) tightens the threshold on those rows (default ``VARIANT_MARGINS``); ``variants`` limits
        the search to rows of those variants. ``method`` "brute" scans every row, "mih" uses the
        multi-index tables, "auto" picks the cheaper by ``mih.choose_m``; all give the same result
        (least distance, lowest row on ties).
        """
        rows, thr = self._selection(region, variants, max_distance, VARIANT_MARGINS if margins is None else margins)
        q = np.asarray(phashes, dtype=np.uint64).reshape(-1)
        radius = int(thr.max()) if len(thr) else -1
        if method not in ("auto", "brute", "mih"):
            raise ValueError(f"method must be auto, brute or mih, got {method!r}")
        m = mih.choose_m(len(rows), radius) if method == "auto" else (4 if method == "mih" else None)
        if m is None or not len(q):
            local, dist = mih.brute_nearest(q, self.phashes[rows], thr, block)
        else:
            local, dist = self._multi_index(region, variants, rows, m).nearest(q, thr)
        return self._matches(np.where(local >= 0, rows[np.maximum(local, 0)], -1), dist)

    def _selection(self, region: str, variants: tuple[str, ...] | None, max_distance: int | dict[str, int],
                   margins: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """(rows searched, int16 threshold per row), cached per arguments: with millions of rows a
        per-call rebuild would cost more than a batch of MIH lookups."""
        md = tuple(sorted(max_distance.items())) if isinstance(max_distance, dict) else int(max_distance)
        key = (region, None if variants is None else tuple(sorted(variants)), md, tuple(sorted(margins.items())))
        hit = self._selections.get(key)
        if hit is not None:
            return hit
        rows = self._region_rows[region]
        if variants is not None:
            rows = rows[np.isin(self.variants[rows], variants)]
        set_names, set_codes = self._codes("set")
        if isinstance(max_distance, dict):
            per_set = np.array([max_distance.get(s, -1) for s in set_names], dtype=np.int16)
        else:
            per_set = np.full(len(set_names), max_distance, dtype=np.int16)
        thr = per_set[set_codes[rows]] if len(set_names) else np.zeros(0, np.int16)
        if margins:
            var_names, var_codes = self._codes("variant")
            thr = thr - np.array([margins.get(v, 0) for v in var_names], dtype=np.int16)[var_codes[rows]]
        if len(self._selections) >= 16:
            self._selections.clear()
        self._selections[key] = (rows, thr)
        return rows, thr

    def _codes(self, column: str) -> tuple[list[str], np.ndarray]:
        """(distinct values, code per row) of a string column, via Arrow's dictionary encoding."""
        if column not in self._column_codes:
            enc = self.table.column(column).combine_chunks().dictionary_encode()
            self._column_codes[column] = (enc.dictionary.to_pylist(), enc.indices.to_numpy(zero_copy_only=False))
        return self._column_codes[column]

    def _multi_index(self, region: str, variants: tuple[str, ...] | None, rows: np.ndarray, m: int) -> mih.MultiIndex:
        key = (region, None if variants is None else tuple(sorted(variants)), m)
        if key not in self._tables:
            self._tables[key] = mih.MultiIndex(self.phashes[rows], m)
            log.info("eval index: MIH tables m=%d over %d rows (%.1f MB)", m, len(rows), self._tables[key].nbytes / 1e6)
        return self._tables[key]

    def query_embeddings(self, embeddings: np.ndarray, min_similarity: float | dict[str, float],
                         block: int = 1024) -> Matches:
        """Most similar eval image per L2-normalised query embedding with cosine >= the (per-set) threshold."""
        if self.embeddings is None:
            raise ValueError("this eval index holds no embeddings (build it with --model and --checkpoint)")
        q = np.asarray(embeddings, np.float32)
        n = len(q)
        rows = self.embedding_rows
        if isinstance(min_similarity, dict):
            thr = np.array([min_similarity.get(s, np.inf) for s in self.sets[rows]], np.float32)
        else:
            thr = np.full(len(rows), min_similarity, np.float32)
        best = np.full(n, -1, dtype=np.int64)
        sim = np.full(n, np.nan, dtype=np.float32)
        if len(rows) and n:
            for a in range(0, n, block):
                s = q[a:a + block] @ self.embeddings.T
                s[s < thr[None, :]] = -np.inf
                j = s.argmax(axis=1)
                sj = s[np.arange(len(j)), j]
                hit = np.isfinite(sj)
                best[a:a + block][hit] = rows[j[hit]]
                sim[a:a + block][hit] = sj[hit]
        return self._matches(best, np.where(best >= 0, 0, NO_MATCH).astype(np.int16), sim)


def _stored_jpeg(data: bytes) -> bytes:
    """JPEG bytes as download stores them (its default size): how a copy reaches the detector."""
    from wit.download.image import prepare

    p = prepare(data)
    if p.jpg is None:
        raise ValueError(f"eval index: a shuffled copy did not decode ({p.reason})")
    return p.jpg


def _load_part(directory: str, name: str, kind, n_rows: int, flag: str):
    """An optional per-image part of the index (keypoints, shuffled-copy histograms), or None; a damaged
    file, or one naming rows the index lacks, stops with one line that says how to rebuild it."""
    if not folders.exists(folders.join(directory, name)):
        return None
    fs, path = folders.fs_and_path(folders.join(directory, name))
    with fs.open(path, "rb") as f:
        data = f.read()
    try:
        part = kind.from_bytes(data)
    except Exception as e:  # noqa: BLE001 - a cut or foreign file: one line, not numpy's traceback
        raise ValueError(f"eval index {directory}: {name} is damaged ({type(e).__name__}); "
                         f"rebuild it with `wit dedupe index {flag}`") from None
    if len(part.owners) and (int(part.owners.min()) < 0 or int(part.owners.max()) >= n_rows):
        raise ValueError(f"eval index {directory}: {name} names rows the index does not have "
                         f"(it has {n_rows}); rebuild it with `wit dedupe index {flag}`")
    return part


def build_index_cli(pairs: list[str], out: str, model: str | None = None, checkpoint: str | None = None,
                    embed_threshold: float | None = None, dihedral_variants: bool = False,
                    warp_variants: bool = False, keypoints: bool = False, shuffled: bool = False) -> EvalIndex:
    """`NAME=PATH` pairs -> a saved index (with embeddings when a checkpoint is given)."""
    from wit.cli_args import parse_pairs

    sets = parse_pairs(pairs, "--eval", existing_path=True)
    index = EvalIndex.build(sets, embedder=make_embedder(model, checkpoint, embed_threshold),
                            dihedral_variants=dihedral_variants, warp_variants=warp_variants, keypoints=keypoints,
                            shuffled=shuffled)
    index.save(out)
    return index


def make_embedder(model: str | None, checkpoint: str | None, threshold: float | None = None):
    """An embedder when a checkpoint is given, else None: ``wit.dedupe.detector.make_embedder``."""
    from wit.dedupe.detector import make_embedder as make

    return make(model, checkpoint, threshold)
