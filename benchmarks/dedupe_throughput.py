"""Dedupe throughput: pHash+pixel-hash descriptors/s on one core, and pHash lookups/s (threshold 10)
against 100k eval images as a bare 100k-row index and with 29 rows per image (2.9M rows, the default
index), brute force vs multi-index hashing in the same run, medians of 3 interleaved rounds; and the
within-dataset near-duplicate pass (rows/s, threshold 4) at 100k rows (both methods) and 1M (MIH only).
Quality per perturbation: benchmarks/dedupe_quality.py.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wit.imagehash import mih  # noqa: E402
from wit.imagehash.descriptors import phash64_batch, pixel_hash  # noqa: E402
from wit.dedupe.index import EvalIndex  # noqa: E402
from wit.dedupe.near import earlier_duplicates  # noqa: E402

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
    h[variant != "image"] = mih.flip_random_bits(rng, h[variant != "image"], 8)
    n = len(h)
    return EvalIndex(pa.table({"set": ["s"] * n, "item": np.repeat(np.arange(n_img), per_img).astype(str),
                               "pixel_xxh3": [""] * n, "phash": pa.array(h, pa.uint64()),
                               "variant": pa.array(variant.tolist(), pa.string())}))


def _queries(rng, eval_hashes: np.ndarray, n: int) -> np.ndarray:
    """Mostly unrelated web images (uniform), 1 in 10 a copy of an eval row 0-12 bits off."""
    q = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    near = rng.random(n) < 0.1
    q[near] = mih.flip_random_bits(rng, eval_hashes[rng.integers(0, len(eval_hashes), int(near.sum()))], 12)
    return q


def within_dataset(threshold: int = 4, sizes=((100_000, True), (1_000_000, False))) -> dict:
    """Rows/s of ``earlier_duplicates`` (pixel hash + pHash pass of ``near_duplicates``), MIH vs the
    brute-force scan where that finishes in seconds (at 1M it would take ~100x the 100k time)."""
    out = {}
    rng = np.random.default_rng(1)
    for n, with_brute in sizes:
        h, px = _web_rows(rng, n)
        name = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
        rates = {"mih": []} | ({"brute": []} if with_brute else {})
        for _ in range(3 if with_brute else 2):
            for method in rates:
                t0 = time.perf_counter()
                got = earlier_duplicates(px, h, threshold, method=method)
                rates[method].append(n / (time.perf_counter() - t0))
                if method == "brute":
                    assert np.array_equal(got, earlier_duplicates(px, h, threshold, method="mih"))
        for method, r in rates.items():
            out[f"near_dup_rows_per_s_{name}_{method}"] = round(statistics.median(r), 1)
        m = mih.choose_m(n, threshold)
        out[f"near_dup_m_{name}"] = m
        # offsets (2^width + 1 uint32) + per row and substring a uint32 row id and the uint64 hash
        out[f"near_dup_table_mb_{name}"] = round((sum((1 << w) + 1 for _, w in mih.split_bits(m)) * 4
                                                  + n * 12 * m) / 1e6, 1)
        out[f"near_dup_share_{name}"] = round(float((got >= 0).mean()), 4)
    return out


def _web_rows(rng, n: int) -> tuple[np.ndarray, pa.Array]:
    """``n`` uniform pHashes, 10 % of them 0-6 bits off an earlier row (re-posts, re-encodes), and
    sha256-like pixel hashes of which 1 % repeat an earlier row's."""
    h = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    copy = np.nonzero(rng.random(n) < 0.1)[0]
    copy = copy[copy > 0]
    src = (rng.random(len(copy)) * copy).astype(np.int64)  # an earlier row
    h[copy] = mih.flip_random_bits(rng, h[src], 6)
    px = np.array([f"{i:064x}" for i in range(n)], dtype=object)
    rep = np.nonzero(rng.random(n) < 0.01)[0]
    rep = rep[rep > 0]
    px[rep] = px[(rng.random(len(rep)) * rep).astype(np.int64)]
    return h, pa.array(px.tolist(), pa.string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--within-only", action="store_true", help="only the within-dataset near-duplicate pass")
    args = ap.parse_args()
    t = throughput() if not args.within_only else {}
    t |= within_dataset()
    print("## dedupe_throughput")
    for k, v in t.items():
        print(f"- {k}: {v}")


if __name__ == "__main__":
    main()
