"""The duplicate detector of the overlap analysis: pHash Hamming distance to the nearest training image.

The training side can be millions of images, so it is hashed as a stage (one task per shard tar,
``TrainHashStage``) into Parquet parts, and ``TrainIndex`` holds only the 64-bit hashes, added
part by part, and searched in (query batch x training chunk) tiles of XOR + popcount. Any
webdataset shards work (KEY.jpg/png/webp + KEY.txt); wit's own shards carry a ``phash`` column in
the Parquet beside each tar, which is used instead of decoding the images again.

The default threshold comes from ``calibrate``: see DEFAULT_THRESHOLD.
"""

from __future__ import annotations

import io
import logging
import random
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa

from wit import schemas
from wit.imagehash import mih
from wit.imagehash.descriptors import hamming, phash64_batch
from wit.io import folders, tars
from wit.shard import metadata
from wit.stage import BatchResult, Stage

log = logging.getLogger(__name__)

# Hamming distance (of 64 bits) at or below which an eval image counts as overlapping a training
# image. From `calibrate` on the 250 ImageNet sample photos of ../shared/data, seeds 0-2: perturbed
# copies (crop <= 3% a side, rescale x0.5-1.5, brightness, blur, mirror, JPEG q40-90) lie at 0-12
# bits of their original (99% within 10), the nearest distinct photo at 14 or more; the best
# TPR - FPR plateau gives 10 (seeds 0, 1) or 12 (seed 2). It is also the dedupe stage's default,
# so what dedupe removes is what this detector flags. docs/overlap.md gives the procedure.
DEFAULT_THRESHOLD = 10

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
DECODE_FAILED = "decode_failed"
NO_IMAGE = "no_image"


def _decode(data: bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def sidecar_parquet(tar_url: str) -> str:
    return tar_url[: -len(".tar")] + ".parquet"


@dataclass
class TrainHashStage(Stage):
    """One task per training shard tar -> (uid, shard, key, phash) per sample.

    A sample without a decodable image is dropped (``decode_failed`` / ``no_image``). With
    ``use_sidecar``, a Parquet beside the tar holding ``key`` and ``phash`` (wit's shards) is read
    instead of the images.
    """

    use_sidecar: bool = True
    #: the learned copy detector (``wit.dedupe.detector.make_embedder``): with one, every image is decoded
    #: and its embedding stored beside its pHash (column ``embedding``)
    detector: str | None = None
    detector_model: str | None = None
    embed_batch: int = 64
    #: dedupe's copy detector (``wit.dedupe.matcher.CopyMatcher``) over the eval index saved here: every
    #: image is decoded, described as download describes it and matched as dedupe matches it (columns
    #: ``eval_set``, ``eval_item``, ``eval_match_by``); None: the pHash alone
    index_dir: str | None = None
    threshold: int = DEFAULT_THRESHOLD
    thresholds: dict[str, int] = field(default_factory=dict)
    match_flips: bool = True
    centre_hash: bool = True
    trim_borders: bool = True
    name: str = "overlap"
    output_schema = schemas.TRAIN_HASHES
    batch_rows: int = 512

    def __post_init__(self) -> None:
        fields = list(schemas.TRAIN_HASHES)
        if self.index_dir:
            fields += schemas.TRAIN_MATCH_FIELDS
        if self.detector:
            fields.append(pa.field("embedding", pa.list_(pa.float32())))
        self.output_schema = pa.schema(fields)

    def setup(self) -> None:
        from wit.dedupe.detector import make_embedder

        self._embedder = (make_embedder(self.detector_model, self.detector, threshold=0.0, batch=self.embed_batch)
                          if self.detector else None)
        self._matcher = None
        if self.index_dir:
            from wit.dedupe.index import EvalIndex
            from wit.dedupe.matcher import CopyMatcher

            # the learned embedding is searched training-side by the job (TrainIndex.nearest_embedding)
            self._matcher = CopyMatcher(EvalIndex.load(self.index_dir), self.threshold, self.thresholds,
                                        self.match_flips, self.centre_hash, self.trim_borders, embeddings=False)

    def _matches(self, images: list) -> dict[str, list]:
        """eval_set, eval_item, eval_match_by per image (None: no image) by dedupe's detector."""
        from wit.imagehash.descriptors import image_hashes, pixel_hash

        n = len(images)
        px, ph, phf, centre, trimmed, err = [""] * n, [0] * n, [0] * n, [None] * n, [None] * n, ["none"] * n
        for i, img in enumerate(images):
            if img is None:
                continue
            rgb = img.convert("RGB")
            h = image_hashes(rgb)
            px[i], ph[i], phf[i], centre[i], trimmed[i], err[i] = (pixel_hash(rgb), h.phash, h.phash_flip,
                                                                   (h.centre, h.centre_flip), h.trimmed, "")
        index = self._matcher.index
        cols: dict[str, list] = {"eval_set": [""] * n, "eval_item": [""] * n, "eval_match_by": [""] * n}
        for i, f in enumerate(self._matcher.match(px, ph, phf, centre, images, err, trimmed)):
            if f is not None:
                cols["eval_set"][i], cols["eval_item"][i], cols["eval_match_by"][i] = (
                    index.sets[f[0]], index.items[f[0]], f[1])
        return cols

    def read_task(self, path: str) -> Iterator[pa.Table]:
        side = sidecar_parquet(path)
        embedder = getattr(self, "_embedder", None)
        matcher = getattr(self, "_matcher", None)
        if self.use_sidecar and embedder is None and matcher is None and folders.exists(side):
            t = folders.read_parquet([side])
            if "phash" in t.column_names and t.column("phash").null_count == 0:
                t = metadata.upgrade(t)
                metadata.require(t, ("key",), side)
                uids = t.column("uid") if "uid" in t.column_names else t.column("key")
                n = t.num_rows
                yield pa.table({"uid": uids.cast(pa.string()), "shard": pa.array([path] * n, pa.string()),
                                "key": t.column("key").cast(pa.string()), "phash": t.column("phash"),
                                "error": pa.array([""] * n, pa.string())})
                return
        rows: dict[str, list] = {"uid": [], "shard": [], "key": [], "phash": [], "error": []}
        images: list = []

        def flush() -> pa.Table:
            ok = [i for i, im in enumerate(images) if im is not None]
            hashes = phash64_batch([images[i] for i in ok]).tolist() if ok else []
            for i, h in zip(ok, hashes):
                rows["phash"][i] = h
            rows["phash"] = metadata.phash_hex(rows["phash"]).to_pylist()
            t = pa.table({k: pa.array(v, schemas.TRAIN_HASHES.field(k).type if k != "error" else pa.string())
                          for k, v in rows.items()})
            if matcher is not None:
                for name, values in self._matches(images).items():
                    t = t.append_column(name, pa.array(values, pa.string()))
            if embedder is not None:
                vecs: list = [None] * len(images)
                if ok:
                    for i, e in zip(ok, embedder.embed([images[i] for i in ok])):
                        vecs[i] = e.tolist()
                t = t.append_column("embedding", pa.array(vecs, pa.list_(pa.float32())))
            for v in rows.values():
                v.clear()
            images.clear()
            return t

        for parts in tars.shard_samples([path]):
            key = uid = parts["__key__"]
            if "json" in parts:
                try:
                    import json

                    uid = str(json.loads(parts["json"]).get("uid") or key)
                except ValueError:
                    pass
            data = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
            img, err = None, ""
            if data is None:
                err = NO_IMAGE
            else:
                try:
                    img = _decode(data)
                except Exception:  # noqa: BLE001 - any decoder failure is a counted drop
                    err = DECODE_FAILED
            rows["uid"].append(uid), rows["shard"].append(path), rows["key"].append(key)
            rows["phash"].append(0), rows["error"].append(err)
            images.append(img)
            if len(images) >= self.batch_rows:
                yield flush()
        if images:
            yield flush()

    def process_batch(self, batch: pa.Table) -> BatchResult:
        err = np.array(batch.column("error").to_pylist(), dtype=object)
        bad = err != ""
        kept = batch.filter(pa.array(~bad)).drop_columns(["error"])
        dropped = batch.filter(pa.array(bad))
        return BatchResult(kept, BatchResult.drops(dropped.column("uid").to_pylist(), dropped.column("error").to_pylist()))


@dataclass(frozen=True)
class Nearest:
    """Per query: Hamming distance to the nearest training hash and where that hash lives."""

    distance: np.ndarray  # int16; 65 when the index is empty
    part: np.ndarray  # int32 index into TrainIndex.parts; -1 when empty
    row: np.ndarray  # int64 row within that part


class TrainIndex:
    """The training set's pHashes, added a Parquet part at a time and searched by a scan (``mih.brute_nearest``).

    Only 8 bytes per training image are held; the (shard, key) of a hit is looked up in its
    part afterwards, for the few pairs a report shows.
    """

    # 32 x 16384 tiles (4 MiB of XORs) stay in cache: ~2x faster than 128 x 65536 on a laptop-class CPU.
    def __init__(self, chunk: int = 1 << 14, query_batch: int = 32):
        self.parts: list[str] = []
        self.blocks: list[np.ndarray] = []
        self.chunk, self.query_batch = chunk, query_batch

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def add(self, hashes: np.ndarray, source: str = "") -> None:
        self.parts.append(source)
        self.blocks.append(np.ascontiguousarray(hashes, dtype=np.uint64))

    def add_part(self, url: str) -> None:
        self.add(metadata.phash_ints(folders.read_parquet([url], columns=["phash"]).column("phash")), url)

    @classmethod
    def from_parts(cls, urls: list[str], **kwargs) -> "TrainIndex":
        index = cls(**kwargs)
        for u in urls:
            index.add_part(u)
        log.info("train index: %d hashes from %d parts", len(index), len(urls))
        return index

    def search(self, queries: np.ndarray) -> Nearest:
        """The nearest training hash of every query (exact; ties go to the earliest)."""
        q = np.asarray(queries, dtype=np.uint64).reshape(-1)
        best = np.full(len(q), 65, dtype=np.int16)
        part = np.full(len(q), -1, dtype=np.int32)
        row = np.full(len(q), -1, dtype=np.int64)
        for p, block in enumerate(self.blocks):
            j, d = mih.brute_nearest(q, block, np.full(len(block), 64, dtype=np.int16), block=self.query_batch,
                                     chunk=self.chunk)
            better = (j >= 0) & (d < best)
            best[better], part[better], row[better] = d[better], p, j[better]
        return Nearest(best, part, row)

    def nearest_embedding(self, queries: np.ndarray, block: int = 1 << 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cosine, part, row) of each query embedding's most similar training embedding (exact; ties go to
        the earliest), reading the parts' ``embedding`` column one part and ``block`` rows at a time."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        best = np.full(len(q), -np.inf, np.float32)
        part = np.full(len(q), -1, np.int32)
        row = np.full(len(q), -1, np.int64)
        for p, url in enumerate(self.parts):
            col = folders.read_parquet([url], columns=["embedding"]).column("embedding").combine_chunks()
            if not len(col):
                continue
            m = col.flatten().to_numpy().reshape(len(col), -1)
            if m.shape[1] != q.shape[1]:
                from wit.dedupe.learned import CheckpointError

                raise CheckpointError(f"{url}: {m.shape[1]}-d training embeddings but the detector gives "
                                      f"{q.shape[1]}-d ones: hash the shards again with this detector")
            for a in range(0, len(m), block):
                sims = q @ m[a:a + block].T
                j = sims.argmax(axis=1)
                s = sims[np.arange(len(q)), j]
                better = s > best
                best[better], part[better], row[better] = s[better], p, a + j[better]
        return best, part, row

    def locate(self, part: int, rows: list[int]) -> list[dict]:
        """(uid, shard, key) of training rows, for the pairs a report shows."""
        t = folders.read_parquet([self.parts[part]], columns=["uid", "shard", "key"]).take(pa.array(rows, pa.int64()))
        return t.to_pylist()


# --- calibration -----------------------------------------------------------------------------

def perturb(img, rng: random.Random):
    """A plausible web copy of ``img``: crop <= 3% a side, rescale, brightness, maybe blur or mirror, JPEG."""
    from PIL import Image, ImageEnhance, ImageFilter

    img = img.convert("RGB")
    w, h = img.size
    box = (int(w * rng.uniform(0, 0.03)), int(h * rng.uniform(0, 0.03)),
           w - int(w * rng.uniform(0, 0.03)), h - int(h * rng.uniform(0, 0.03)))
    img = img.crop(box)
    s = rng.uniform(0.5, 1.5)
    img = img.resize((max(8, int(img.width * s)), max(8, int(img.height * s))), Image.Resampling.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.3:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rng.randint(40, 90))
    return _decode(buf.getvalue())


@dataclass(frozen=True)
class Calibration:
    copy_distances: list[int]  # each original vs its perturbed copy (mirror-aware)
    distractor_distances: list[int]  # each original vs the nearest other image (mirror-aware)
    threshold: int  # best TPR - FPR: the middle of the best plateau, rounded down to even

    def rates(self, threshold: int | None = None) -> tuple[float, float]:
        t = self.threshold if threshold is None else threshold
        c, d = np.array(self.copy_distances), np.array(self.distractor_distances)
        return float((c <= t).mean()), float((d <= t).mean())


def eval_hashes(images: list) -> np.ndarray:
    """(n, 2) uint64: each eval image's pHash and its mirror image's, so mirrored copies match."""
    h, hf = phash64_batch(images, with_flip=True)
    return np.stack([h, hf], axis=1) if len(images) else np.zeros((0, 2), np.uint64)


def _even(d: int) -> int:
    # Every pHash has exactly 32 bits set (median split), so distances are even.
    return int(d) - int(d) % 2


def calibrate(images: list, seed: int = 0) -> Calibration:
    """Pick the distance that separates perturbed copies from distinct images (see DEFAULT_THRESHOLD)."""
    if len(images) < 2:
        raise ValueError("calibration needs at least two images")
    rng = random.Random(seed)
    orig = eval_hashes(images)
    copies = phash64_batch([perturb(im, rng) for im in images])
    copy_d = np.minimum(hamming(orig[:, 0], copies), hamming(orig[:, 1], copies))
    pair = np.minimum(hamming(orig[:, 0][:, None], orig[:, 0][None, :]),
                      hamming(orig[:, 1][:, None], orig[:, 0][None, :])).astype(np.int16)
    np.fill_diagonal(pair, 65)
    distract_d = pair.min(axis=1)
    t_range = np.arange(65)
    j = (copy_d[None, :] <= t_range[:, None]).mean(1) - (distract_d[None, :] <= t_range[:, None]).mean(1)
    best = np.flatnonzero(j == j.max())
    return Calibration(copy_d.astype(int).tolist(), distract_d.astype(int).tolist(), _even((best[0] + best[-1]) // 2))
