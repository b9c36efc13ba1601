"""Dedupe throughput: pHash+pixel-hash descriptors/s on one core, and pHash lookups/s against
100k-row and 2.9M-row indexes (brute-force XOR+popcount; 29 rows per eval image by default, so
2.9M rows = 100k eval images). Quality per perturbation: benchmarks/dedupe_quality.py.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
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
    rng = np.random.default_rng(0)
    import pyarrow as pa

    out = {"phash_per_s_core": round(desc_ps, 1), "pixel_hash_per_s_core": round(px_ps, 1)}
    for n, n_q in ((100_000, 2000), (2_900_000, 200)):
        idx = EvalIndex(pa.table({"set": ["s"] * n, "item": ["i"] * n, "pixel_sha256": [""] * n,
                                  "phash": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64), pa.uint64()),
                                  "variant": ["image"] * n}))
        q = rng.integers(0, 2**63, n_q, dtype=np.uint64)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            idx.query(q, 10)
            times.append(time.perf_counter() - t0)
        out[f"lookups_per_s_{n // 1000}k_rows"] = round(len(q) / statistics.median(times), 1)
    return out


def main() -> None:
    t = throughput()
    print("## dedupe_throughput")
    for k, v in t.items():
        print(f"- {k}: {v}")


if __name__ == "__main__":
    main()
