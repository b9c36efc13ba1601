"""Dedupe quality: recall and precision of eval-copy detection per perturbation and per descriptor.

Eval set = half of ../shared/data/photos (125 photos), indexed with ``EvalIndex.build``; positives =
perturbed copies of them; distractors (>= 2,000) = the other 125 photos, their perturbed copies,
crops and 2x2 mosaics of them, and the mini-web's procedural images (wit.world.render). Every
image goes the real way: JPEG bytes -> download's ``prepare`` (256 px, descriptors) -> the dedupe
``DescribeStage``. Two folds (halves swapped). Precision per perturbation counts every false match
in the whole distractor pool against that perturbation's true matches (the strict reading).

    .venv/bin/python benchmarks/dedupe_quality.py [--model wit-vit-tiny --checkpoint PATH --embed-threshold 0.9]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wit import schemas  # noqa: E402
from wit.dedupe.index import EvalIndex, make_embedder  # noqa: E402
from wit.dedupe.describe import DescribeStage  # noqa: E402
from wit.download.image import prepare  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "imagenet-sample"
KINDS = ["resize", "jpeg", "color_jitter", "crop", "flip", "rotate", "rotate_crop", "text"]


def _jpeg(img: Image.Image, q: int = 90) -> Image.Image:
    b = io.BytesIO()
    img.convert("RGB").save(b, "JPEG", quality=q)
    return Image.open(io.BytesIO(b.getvalue()))


def perturb(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """One perturbed copy; the issue's list: resize, JPEG q30-90, crop <= 20%, colour jitter, flip,
    rotation +-10 degrees (black corners, or cropped to drop them), text overlay."""
    from wit.dedupe.index import rotate

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
    if kind in ("rotate", "rotate_crop"):
        a = rng.uniform(2, 10) * rng.choice([-1, 1])
        return _jpeg(rotate(img, a, crop=kind == "rotate_crop"))
    if kind == "text":
        d = ImageDraw.Draw(img := img.copy())
        d.text((rng.randint(0, w // 2), rng.randint(0, h // 2)), "SAMPLE TEXT www.example.com", fill=(255, 255, 255))
        d.rectangle((0, h - h // 10, w // 2, h), fill=(0, 0, 0))
        return _jpeg(img)
    raise ValueError(kind)


def distractors(others: list[Image.Image], seed: int) -> list[Image.Image]:
    """Non-eval images: the photos, their perturbations, crops (40-70%), 2x2 mosaics, procedural images."""
    from wit.world.concepts import vocabulary
    from wit.world.render import draw

    rng = random.Random(seed)
    out = list(others)
    for kind in KINDS:
        out += [perturb(im, kind, random.Random(f"{seed}-{kind}-{i}")) for i, im in enumerate(others)]
    for im in others:
        for _ in range(4):
            w, h = im.size
            s = rng.uniform(0.4, 0.7)
            cw, ch = int(w * s), int(h * s)
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            out.append(_jpeg(im.crop((x, y, x + cw, y + ch))))
    for _ in range(300):
        tiles = rng.sample(others, 4)
        m = Image.new("RGB", (256, 256))
        for k, t in enumerate(tiles):
            m.paste(t.resize((128, 128)), ((k % 2) * 128, (k // 2) * 128))
        out.append(_jpeg(m))
    voc = vocabulary("small")
    concepts = voc["shapes"] + voc["objects"]
    for _ in range(400):
        size = (rng.randint(96, 400), rng.randint(96, 400))
        out.append(_jpeg(draw(rng.sample(concepts, rng.randint(1, 3)), size, rng)))
    return out


def _rows(images: list[Image.Image], prefix: str) -> pa.Table:
    """What dedupe reads from download: the stored 256-px JPEG and download's descriptors (the centre
    pHashes included, so describe decodes nothing unless embeddings are on)."""
    rows = []
    for i, im in enumerate(images):
        b = io.BytesIO()
        im.convert("RGB").save(b, "JPEG", quality=90)
        p = prepare(b.getvalue(), image_size=256)
        rows.append({"uid": f"{prefix}{i}", "jpg": p.jpg, "phash": p.phash, "phash_flip": p.phash_flip,
                     "pixel_sha256": p.pixel_sha256, "phash_centre": p.phash_centre,
                     "phash_centre_flip": p.phash_centre_flip})
    return pa.Table.from_pylist(rows, schema=pa.schema([("uid", pa.string()), ("jpg", pa.binary())]
                                                       + schemas.DESCRIPTOR_FIELDS))


CONFIGS = {  # name: (index flags, describe flags)
    "pHash": (dict(crop_variants=False, rotation_variants=False, centre=False), dict(centre_hash=False)),
    "+crops": (dict(crop_variants=True, rotation_variants=False, centre=False), dict(centre_hash=False)),
    "+rotations": (dict(crop_variants=True, rotation_variants=True, centre=False), dict(centre_hash=False)),
    "+centre (default)": (dict(crop_variants=True, rotation_variants=True, centre=True), dict(centre_hash=True)),
}


def evaluate(threshold: int = 10, folds: int = 2, embedder=None, embed_only: bool = False) -> dict:
    files = sorted(PHOTOS.glob("*.JPEG"))
    random.Random(0).shuffle(files)
    halves = [files[: len(files) // 2], files[len(files) // 2:]]
    configs = dict(CONFIGS)
    if embedder is not None:
        configs = {"embedding only": (dict(crop_variants=False, rotation_variants=False, centre=False),
                                      dict(centre_hash=False, threshold=-1)),
                   "+centre +embedding": (CONFIGS["+centre (default)"][0], dict(centre_hash=True))}
        if embed_only:
            configs.pop("+centre +embedding")
    res = {c: {k: {"tp": 0, "right": 0, "n": 0} for k in KINDS} | {"_fp": 0, "_neg": 0, "_by": {}} for c in configs}
    timing = {}
    for fold in range(folds):
        evals, others = halves[fold], halves[1 - fold]
        ev_imgs = [Image.open(p).convert("RGB") for p in evals]
        pos = {k: _rows([perturb(im, k, random.Random(f"{fold}-{k}-{i}")) for i, im in enumerate(ev_imgs)], f"{k}:")
               for k in KINDS}
        neg = _rows(distractors([Image.open(p).convert("RGB") for p in others], seed=fold), "neg:")
        with tempfile.TemporaryDirectory() as tmp:
            ev_dir = Path(tmp) / "eval"
            ev_dir.mkdir()
            for p in evals:
                (ev_dir / p.name).symlink_to(p)
            for name, (ix_flags, desc_flags) in configs.items():
                emb = embedder if name.endswith("embedding") or name == "embedding only" else None
                t0 = time.perf_counter()
                index = EvalIndex.build({"photos": str(ev_dir)}, embedder=emb, **ix_flags)
                index.save(f"{tmp}/ix")
                stage = DescribeStage(index_dir=f"{tmp}/ix", **({"threshold": threshold} | desc_flags))
                stage.setup()
                t1 = time.perf_counter()
                r = res[name]
                for k in KINDS:
                    d = stage.process_batch(pos[k]).kept
                    m, by = d.column("eval_match").to_pylist(), d.column("eval_match_by").to_pylist()
                    r[k]["tp"] += sum(bool(x) for x in m)
                    r[k]["right"] += sum(x == f"photos:{p.name}" for x, p in zip(m, evals))
                    r[k]["n"] += len(m)
                    for b in by:
                        if b:
                            r["_by"][b] = r["_by"].get(b, 0) + 1
                d = stage.process_batch(neg).kept
                fp = [(u, x, b) for u, x, b in zip(d.column("uid").to_pylist(), d.column("eval_match").to_pylist(),
                                                   d.column("eval_match_by").to_pylist()) if x]
                r["_fp"] += len(fp)
                r["_neg"] += neg.num_rows
                r.setdefault("_fp_examples", []).extend(fp[:5])
                n_q = neg.num_rows + sum(t.num_rows for t in pos.values())
                timing[name] = {"index_rows_per_image": index.rows_per_image(),
                                "describe_ms_per_image": round(1000 * (time.perf_counter() - t1) / n_q, 3),
                                "index_build_s": round(t1 - t0, 2)}
    return {"results": res, "timing": timing, "threshold": threshold, "folds": folds}


def table(out: dict) -> str:
    lines = []
    for name, r in out["results"].items():
        fp, n_neg = r["_fp"], r["_neg"]
        lines.append(f"\n### {name}: {fp} false matches among {n_neg} distractors "
                     f"(FPR {fp / max(1, n_neg):.4f}); {out['timing'][name]}")
        lines.append("| perturbation | recall | precision | right item | eval copies |")
        lines.append("|---|---|---|---|---|")
        for k in KINDS:
            c = r[k]
            lines.append(f"| {k} | {c['tp'] / c['n']:.3f} | {c['tp'] / max(1, c['tp'] + fp):.3f} "
                         f"| {c['right'] / c['n']:.3f} | {c['n']} |")
        lines.append(f"matched by: {json.dumps(dict(sorted(r['_by'].items())))}")
        if r.get("_fp_examples"):
            lines.append(f"false matches (first): {r['_fp_examples'][:6]}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--folds", type=int, default=2, choices=[1, 2])
    ap.add_argument("--model", default=None)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--embed-threshold", type=float, default=0.95)
    ap.add_argument("--embed-only", action="store_true", help="only the embedding-only configuration")
    args = ap.parse_args()
    emb = make_embedder(args.model, args.checkpoint, args.embed_threshold)
    t0 = time.perf_counter()
    out = evaluate(args.threshold, args.folds, emb, args.embed_only)
    print(f"## dedupe_quality (pHash <= {args.threshold} bits, flip-aware, {args.folds} folds, "
          f"{time.perf_counter() - t0:.0f} s)")
    print(table(out))


if __name__ == "__main__":
    main()
