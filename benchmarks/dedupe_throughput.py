"""Dedupe throughput and quality.

Throughput: pHash+pixel-hash descriptors/s on one core, and pHash lookups/s against a 100k-item
eval index (brute-force XOR+popcount). Quality: precision/recall of eval-copy detection on
perturbed copies of ../shared/data/photos (eval = half the photos, distractors = the other half
and their perturbations), per perturbation, at the default threshold.
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wit.dedupe.descriptors import phash64_batch, pixel_hash  # noqa: E402
from wit.dedupe.index import EvalIndex  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "imagenet-sample"


def _jpeg(img: Image.Image, q: int = 90) -> Image.Image:
    b = io.BytesIO()
    img.convert("RGB").save(b, "JPEG", quality=q)
    return Image.open(io.BytesIO(b.getvalue()))


def perturb(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    w, h = img.size
    if kind == "resize":
        s = rng.uniform(0.3, 0.8)
        return _jpeg(img.resize((max(8, int(w * s)), max(8, int(h * s)))))
    if kind == "jpeg":
        return _jpeg(img, rng.randint(30, 90))
    if kind == "crop":
        f = rng.uniform(0.05, 0.20)
        dx, dy = int(w * f * rng.random()), int(h * f * rng.random())
        return _jpeg(img.crop((dx, dy, dx + int(w * (1 - f)), dy + int(h * (1 - f)))))
    if kind == "color_jitter":
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.75, 1.25))
        return _jpeg(ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3)))
    if kind == "flip":
        return _jpeg(ImageOps.mirror(img))
    if kind == "rotate":
        return _jpeg(img.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, expand=False))
    if kind == "text":
        d = ImageDraw.Draw(img := img.copy())
        d.text((rng.randint(0, w // 2), rng.randint(0, h // 2)), "SAMPLE TEXT www.example.com", fill=(255, 255, 255))
        d.rectangle((0, h - h // 10, w // 2, h), fill=(0, 0, 0))
        return _jpeg(img)
    raise ValueError(kind)


KINDS = ["resize", "jpeg", "color_jitter", "crop", "flip", "rotate", "text"]


def quality(threshold: int = 10) -> list[dict]:
    files = sorted(PHOTOS.glob("*.JPEG"))
    rng = random.Random(0)
    rng.shuffle(files)
    evals, others = files[: len(files) // 2], files[len(files) // 2:]
    index = EvalIndex(_table(evals, with_crops=True))
    rows = []
    for kind in KINDS:
        r = random.Random(kind)
        pos = [perturb(Image.open(p).convert("RGB"), kind, r) for p in evals]
        neg = [perturb(Image.open(p).convert("RGB"), kind, r) for p in others]
        hp, hpf = phash64_batch(pos, with_flip=True)
        hn, hnf = phash64_batch(neg, with_flip=True)
        a, b = index.query(hp, threshold), index.query(hpf, threshold)
        mp = a.hit | b.hit
        mn = index.query(hn, threshold).hit | index.query(hnf, threshold).hit
        best = np.where(b.distance < a.distance, b.index, a.index)
        correct = sum(bool(h) and index.items[i] == str(p) for h, i, p in zip(mp, np.maximum(best, 0), evals))
        tp, fp = int(mp.sum()), int(mn.sum())
        rows.append({"perturbation": kind, "recall": tp / len(pos), "precision": tp / max(1, tp + fp),
                     "correct_item": correct / len(pos), "positives": len(pos), "distractors": len(neg)})
    return rows


def _table(paths, with_crops=False):
    import pyarrow as pa

    from wit.dedupe.index import crops

    imgs = [Image.open(p).convert("RGB") for p in paths]
    items, pxs, phs = [str(p) for p in paths], [pixel_hash(i) for i in imgs], phash64_batch(imgs).tolist()
    if with_crops:
        for p, im in zip(paths, imgs):
            c = crops(im)
            items += [str(p)] * len(c)
            pxs += [""] * len(c)
            phs += phash64_batch(c).tolist()
    return pa.table({"set": ["photos"] * len(items), "item": items, "pixel_sha256": pxs,
                     "phash": pa.array(phs, pa.uint64())})


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

    n = 100_000
    idx = EvalIndex(pa.table({"set": ["s"] * n, "item": [str(i) for i in range(n)], "pixel_sha256": [""] * n,
                              "phash": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64), pa.uint64())}))
    q = rng.integers(0, 2**63, 2000, dtype=np.uint64)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        idx.query(q, 10)
        times.append(time.perf_counter() - t0)
    return {"phash_per_s_core": round(desc_ps, 1), "pixel_hash_per_s_core": round(px_ps, 1),
            "lookups_per_s_100k_index": round(len(q) / statistics.median(times), 1)}


def main() -> None:
    t = throughput()
    print("## dedupe_throughput")
    for k, v in t.items():
        print(f"- {k}: {v}")
    print("\n## dedupe_quality (pHash <= 10 bits, flip-aware)")
    print("| perturbation | recall | precision | right item | eval copies | distractors |")
    print("|---|---|---|---|---|---|")
    for r in quality():
        print(f"| {r['perturbation']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['correct_item']:.3f} "
              f"| {r['positives']} | {r['distractors']} |")


if __name__ == "__main__":
    main()
