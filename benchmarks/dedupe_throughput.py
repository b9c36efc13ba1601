"""Dedupe throughput: pHash+pixel-hash descriptors/s on one core, and pHash lookups/s (threshold 10)
against 100k eval images as a bare 100k-row index and with 29 rows per image (2.9M rows, the default
index), brute force vs multi-index hashing in the same run, medians of 3 interleaved rounds.
Quality per perturbation: benchmarks/dedupe_quality.py.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wit.dedupe.descriptors import phash64_batch, pixel_hash  # noqa: E402
from wit.dedupe.index import EvalIndex  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "imagenet-sample"


def throughput() -> dict:
    files = sorted(PHOTOS.glob("*.JPEG"))[:100]
    datas = [p.read_bytes() for p in files]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        imgs = [Image.open(io.BytesIO(d)) for d in datas]
        phash64_batch(imgs)
        times.append(time.perf_counter() - t0)
    desc_ps = len(datas) / statistics.median(times)
    t0 = time.perf_counter()
    imgs = [Image.open(io.BytesIO(d)).convert("RGB") for d in datas]
    _ = [pixel_hash(i) for i in imgs]
    px_ps = len(datas) / (time.perf_counter() - t0)
    out = {"phash_per_s_core": round(desc_ps, 1), "pixel_hash_per_s_core": round(px_ps, 1)}
    rng = np.random.default_rng(0)
    for n_img, per_img, n_brute, n_mih in ((100_000, 1, 2000, 20_000), (100_000, 29, 200, 20_000)):
        idx = _index(rng, n_img, per_img)
        q = _queries(rng, idx.phashes, n_mih)
        name = f"{len(idx) // 1000}k_rows"
        t0 = time.perf_counter()
        m = idx.query(q[:1], 10, method="auto")  # builds the MIH tables once, as the first batch of a task does
        out[f"mih_build_s_{name}"] = round(time.perf_counter() - t0, 2)
        tables = next(iter(idx._tables.values()))
        out[f"mih_m_{name}"] = tables.m
        out[f"mih_table_mb_{name}"] = round(tables.nbytes / 1e6, 1)
        rates = {"brute": [], "mih": []}
        for _ in range(3):  # interleaved so load from other jobs hits both alike
            for method, qq in (("brute", q[:n_brute]), ("mih", q)):
                t0 = time.perf_counter()
                m = idx.query(qq, 10, method="auto" if method == "mih" else "brute")
                rates[method].append(len(qq) / (time.perf_counter() - t0))
        same = idx.query(q[:n_brute], 10, method="brute")
        assert np.array_equal(same.index, m.index[:n_brute]) and np.array_equal(same.distance, m.distance[:n_brute])
        for method, r in rates.items():
            out[f"lookups_per_s_{name}_{method}"] = round(statistics.median(r), 1)
        out[f"hit_rate_{name}"] = round(float(m.hit.mean()), 3)
    return out


VARIANTS = ["image"] + ["crop"] * 19 + ["rotate"] * 4 + ["rotate_crop"] * 4 + ["centre"]


def _index(rng, n_img: int, per_img: int) -> EvalIndex:
    """``n_img`` uniform random image pHashes, each with ``per_img - 1`` variant rows 0-8 bits off it
    (how crop/rotation rows sit around their image), under the real variant names so margins apply."""
    base = rng.integers(0, 2**64, n_img, dtype=np.uint64, endpoint=False)
    h = np.repeat(base, per_img)
    variant = np.tile(np.array(VARIANTS[:per_img], dtype=object), n_img)
    h[variant != "image"] = _flip(rng, h[variant != "image"], 8)
    n = len(h)
    return EvalIndex(pa.table({"set": ["s"] * n, "item": np.repeat(np.arange(n_img), per_img).astype(str),
                               "pixel_sha256": [""] * n, "phash": pa.array(h, pa.uint64()),
                               "variant": pa.array(variant.tolist(), pa.string())}))


def _flip(rng, h: np.ndarray, max_bits: int) -> np.ndarray:
    """``h`` with 0..``max_bits`` random bits flipped per value."""
    out = h.copy()
    k = rng.integers(0, max_bits + 1, len(h))
    for j in range(max_bits):
        bit = rng.integers(0, 64, len(h)).astype(np.uint64)
        out ^= np.where(k > j, np.uint64(1) << bit, np.uint64(0))
    return out


def _queries(rng, eval_hashes: np.ndarray, n: int) -> np.ndarray:
    """Mostly unrelated web images (uniform), 1 in 10 a copy of an eval row 0-12 bits off."""
    q = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    near = rng.random(n) < 0.1
    q[near] = _flip(rng, eval_hashes[rng.integers(0, len(eval_hashes), int(near.sum()))], 12)
    return q


def main() -> None:
    t = throughput()
    print("## dedupe_throughput")
    for k, v in t.items():
        print(f"- {k}: {v}")


if __name__ == "__main__":
    main()
