"""Dedupe quality: recall and precision of eval-copy detection per perturbation and per descriptor.

Eval set = half of ../shared/data/photos (125 photos), indexed with ``EvalIndex.build``; positives =
perturbed copies of them; distractors (2,450) = the other 125 photos, their perturbed copies, crops,
2x2 mosaics and pixel-shuffled copies of them, and the mini-web's procedural images
(wit.world.render). Every image goes the real way: JPEG bytes -> download's ``prepare`` (256 px,
descriptors) -> the dedupe ``DescribeStage``. Two folds (halves swapped). Precision per perturbation counts every false match
in the whole distractor pool against that perturbation's true matches (the strict reading).

Two suites of positives: wit's own perturbations (KINDS) and AugLy's image augmentations at their
defaults (``wit.dedupe.augly_suite``; the second image some need is a non-eval photo). ``--learned``
trains the learned copy descriptor per fold on that fold's 125 non-eval photos (never on eval images;
cached under ``--checkpoint-dir``) and adds its columns; ``--checkpoint`` (with ``--model`` for
open_clip, without for TorchScript) adds a given one instead.

    .venv/bin/python benchmarks/dedupe_quality.py [--suite wit|augly|all] [--learned --checkpoint-dir DIR]
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

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wit import schemas  # noqa: E402
from wit.dedupe.index import EvalIndex, make_embedder  # noqa: E402
from wit.dedupe.describe import DescribeStage  # noqa: E402
from wit.download.image import prepare  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "imagenet-sample"
KINDS = ["resize", "jpeg", "color_jitter", "crop", "flip", "rotate", "rotate_crop", "text"]
AUGLY = "augly:"


def _jpeg(img: Image.Image, q: int = 90) -> Image.Image:
    b = io.BytesIO()
    img.convert("RGB").save(b, "JPEG", quality=q)
    return Image.open(io.BytesIO(b.getvalue()))


def perturb(img: Image.Image, kind: str, rng: random.Random, other: Image.Image | None = None) -> Image.Image:
    """One perturbed copy; the issue's list: resize, JPEG q30-90, crop <= 20%, colour jitter, flip,
    rotation +-10 degrees (black corners, or cropped to drop them), text overlay; or ``augly:NAME``."""
    from wit.dedupe.index import rotate

    if kind.startswith(AUGLY):
        from wit.dedupe.augly_suite import augment

        return _jpeg(augment(img, kind[len(AUGLY):], other if other is not None else img))
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
    """Non-eval images: the photos, their perturbations, crops (40-70%), 2x2 mosaics, pixel-shuffled
    photos, procedural images."""
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
    # pixel-shuffled non-eval photos: the hard negatives of the shuffled-copy histogram (two photos of
    # the same colours are told apart by its ratio test or not at all)
    from wit.dedupe.augly_suite import augment

    out += [_jpeg(augment(im, "ShufflePixels", im)) for im in others]
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
                     "pixel_xxh3": p.pixel_xxh3, "phash_centre": p.phash_centre,
                     "phash_centre_flip": p.phash_centre_flip, "phash_trimmed": p.phash_trimmed})
    return pa.Table.from_pylist(rows, schema=pa.schema([("uid", pa.string()), ("jpg", pa.binary())]
                                                       + schemas.DESCRIPTOR_FIELDS))


CONFIGS = {  # name: (index flags, describe flags)
    "pHash": (dict(crop_variants=False, rotation_variants=False, centre=False), dict(centre_hash=False)),
    "+crops": (dict(crop_variants=True, rotation_variants=False, centre=False), dict(centre_hash=False)),
    "+rotations": (dict(crop_variants=True, rotation_variants=True, centre=False), dict(centre_hash=False)),
    "+centre (default)": (dict(crop_variants=True, rotation_variants=True, centre=True), dict(centre_hash=True)),
    "+turns": (dict(crop_variants=True, rotation_variants=True, centre=True, dihedral_variants=True),
               dict(centre_hash=True)),
    "+turns +warps": (dict(crop_variants=True, rotation_variants=True, centre=True, dihedral_variants=True,
                           warp_variants=True), dict(centre_hash=True)),
    "+turns +warps +keypoints": (dict(crop_variants=True, rotation_variants=True, centre=True, dihedral_variants=True,
                                      warp_variants=True, keypoints=True), dict(centre_hash=True)),
    "+turns +warps +keypoints +shuffled": (dict(crop_variants=True, rotation_variants=True, centre=True,
                                                dihedral_variants=True, warp_variants=True, keypoints=True,
                                                shuffled=True), dict(centre_hash=True)),
}
EMBEDDING_CONFIGS = {
    "learned only": (dict(crop_variants=False, rotation_variants=False, centre=False),
                     dict(centre_hash=False, threshold=-1, match_flips=False)),
    "+turns +learned": (CONFIGS["+turns"][0], dict(centre_hash=True)),
    "+turns +warps +learned": (CONFIGS["+turns +warps"][0], dict(centre_hash=True)),
    "+turns +warps +learned +keypoints": (CONFIGS["+turns +warps +keypoints"][0], dict(centre_hash=True)),
}


def fold_halves() -> list[list[Path]]:
    files = sorted(PHOTOS.glob("*.JPEG"))
    random.Random(0).shuffle(files)
    return [files[: len(files) // 2], files[len(files) // 2:]]


def fold_detector(fold: int, directory: str, steps: int | None = None):
    """The learned descriptor for ``fold``: trained on that fold's non-eval photos (cached as fold{N}.pt)."""
    from dataclasses import replace

    from wit.dedupe.learned import CopyDescriptor
    from wit.dedupe.train_detector import TrainDetectorConfig, train_detector

    ckpt = Path(directory) / f"fold{fold}.pt"
    marker = Path(directory) / f"fold{fold}.training"
    while marker.exists() and not ckpt.exists():  # another process is training it
        time.sleep(10)
    if not ckpt.exists():
        train_dir = Path(directory) / f"train{fold}"
        train_dir.mkdir(parents=True, exist_ok=True)
        for p in fold_halves()[1 - fold]:
            if not (train_dir / p.name).exists():
                (train_dir / p.name).symlink_to(p)
        cfg = TrainDetectorConfig() if steps is None else replace(TrainDetectorConfig(), steps=steps)
        train_detector(str(train_dir), str(ckpt), cfg)
    return CopyDescriptor(str(ckpt))


def descriptor_costs(images: list[Image.Image], embedder=None) -> dict:
    """ms per image, one process: download's pHashes (whole + centre with mirrors) of the 256-px image,
    the dihedral/wide-rotation index rows of an eval image, ORB keypoints, and the learned embedding
    (the keypoint search is in the configurations' ``describe_ms_per_image``)."""
    from wit.imagehash.descriptors import image_hashes
    from wit.dedupe.index import _describe_rows

    small = [im.copy() for im in images]
    for im in small:
        im.thumbnail((256, 256))
    out = {}
    t = time.perf_counter()
    for im in small:
        image_hashes(im)
    out["phash_ms"] = round(1000 * (time.perf_counter() - t) / len(small), 3)
    t = time.perf_counter()
    for im in small[:40]:
        _describe_rows(im, False, False, False, True)
    out["turns_index_rows_ms_per_eval_image"] = round(1000 * (time.perf_counter() - t) / min(40, len(small)), 3)
    from wit.imagehash.keypoints import EVAL_KEYPOINTS, KeypointIndex, orb_features

    t = time.perf_counter()
    for im in small:
        orb_features(im)
    out["keypoints_ms"] = round(1000 * (time.perf_counter() - t) / len(small), 3)
    # the whole keypoint step for images that copy nothing, as download stores them (256-px shorter
    # side): one half of the photos indexed, the other half looked up (first look, then the second where
    # cued, or always)
    half = len(images) // 2
    kpi = KeypointIndex.build([(i, orb_features(im, EVAL_KEYPOINTS)) for i, im in enumerate(images[:half])])
    kpi.prepare()
    stored = [Image.open(io.BytesIO(b)) for b in _rows(images[half:], "cost:").column("jpg").to_pylist()]
    for im in stored:
        im.load()
    for mode in ("cued", "always"):
        t = time.perf_counter()
        for im in stored:
            kpi.find(im, mode)
        out[f"keypoints_find_{mode}_ms"] = round(1000 * (time.perf_counter() - t) / len(stored), 3)
    from wit.imagehash.shuffled import looks_shuffled

    t = time.perf_counter()
    for im in small:
        looks_shuffled(np.asarray(im))
    out["shuffled_gate_ms"] = round(1000 * (time.perf_counter() - t) / len(small), 3)
    if embedder is not None:
        embedder.embed(small[:8])
        t = time.perf_counter()
        embedder.embed(small)
        out["learned_ms"] = round(1000 * (time.perf_counter() - t) / len(small), 3)
    return out


def evaluate(threshold: int = 10, folds: int = 2, embedder=None, embed_only: bool = False,
             suite: str = "all", learned_dir: str | None = None, learned_steps: int | None = None,
             only: list[str] | None = None, limit: int | None = None) -> dict:
    from wit.dedupe.augly_suite import transform_names

    halves = fold_halves()
    kinds = (KINDS if suite in ("wit", "all") else []) + (
        [AUGLY + n for n in transform_names()] if suite in ("augly", "all") else [])
    configs = dict(CONFIGS)
    if embedder is not None or learned_dir:
        configs |= EMBEDDING_CONFIGS
        if embed_only:
            configs = {"learned only": EMBEDDING_CONFIGS["learned only"]}
    if only:
        configs = {k: v for k, v in configs.items() if k in only}
    res = {c: {k: {"tp": 0, "right": 0, "n": 0, "folds": [[0, 0] for _ in range(folds)]} for k in kinds}
           | {"_fp": 0, "_neg": 0, "_by": {}, "_fp_folds": [0] * folds} for c in configs}
    timing = {}
    costs = {}
    for fold in range(folds):
        evals, others = halves[fold][:limit], halves[1 - fold]
        ev_imgs = [Image.open(p).convert("RGB") for p in evals]
        other_imgs = [Image.open(p).convert("RGB") for p in others]
        pos = {k: _rows([perturb(im, k, random.Random(f"{fold}-{k}-{i}"), other_imgs[i % len(other_imgs)])
                         for i, im in enumerate(ev_imgs)], f"{k}:") for k in kinds}
        neg = _rows(distractors(other_imgs, seed=fold), "neg:")
        if learned_dir:
            embedder = fold_detector(fold, learned_dir, learned_steps)
        costs = descriptor_costs(ev_imgs, embedder)
        with tempfile.TemporaryDirectory() as tmp:
            ev_dir = Path(tmp) / "eval"
            ev_dir.mkdir()
            for p in evals:
                (ev_dir / p.name).symlink_to(p)
            for name, (ix_flags, desc_flags) in configs.items():
                emb = embedder if name in EMBEDDING_CONFIGS else None
                t0 = time.perf_counter()
                index = EvalIndex.build({"photos": str(ev_dir)}, embedder=emb, **ix_flags)
                index.save(f"{tmp}/ix")
                stage = DescribeStage(index_dir=f"{tmp}/ix", **({"threshold": threshold} | desc_flags))
                stage.setup()
                t1 = time.perf_counter()
                r = res[name]
                for k in kinds:
                    d = stage.process_batch(pos[k]).kept
                    m, by = d.column("eval_match").to_pylist(), d.column("eval_match_by").to_pylist()
                    r[k]["tp"] += sum(bool(x) for x in m)
                    right = sum(x == f"photos:{p.name}" for x, p in zip(m, evals))
                    r[k]["right"] += right
                    r[k]["folds"][fold][0] += right
                    r[k]["folds"][fold][1] += len(m)
                    r[k]["n"] += len(m)
                    for b in by:
                        if b:
                            r["_by"][b] = r["_by"].get(b, 0) + 1
                d = stage.process_batch(neg).kept
                fp = [(u, x, b) for u, x, b in zip(d.column("uid").to_pylist(), d.column("eval_match").to_pylist(),
                                                   d.column("eval_match_by").to_pylist()) if x]
                r["_fp"] += len(fp)
                r["_fp_folds"][fold] += len(fp)
                r["_neg"] += neg.num_rows
                r.setdefault("_fp_examples", []).extend(fp[:5])
                n_q = neg.num_rows + sum(t.num_rows for t in pos.values())
                timing[name] = {"index_rows_per_image": index.rows_per_image(),
                                "embed_threshold": index.model.get("threshold"),
                                "index_calibration": index.model.get("index_calibration"),
                                "describe_ms_per_image": round(1000 * (time.perf_counter() - t1) / n_q, 3),
                                "index_build_s": round(t1 - t0, 2)}
    return {"results": res, "timing": timing, "threshold": threshold, "folds": folds, "kinds": kinds,
            "costs": costs}


def matrix(out: dict) -> str:
    """One row per perturbation / AugLy transform, one recall column per descriptor configuration.

    Recall counts a copy found as its own original; a copy matched to another eval image counts as
    missed, and as a false match in the precision row (beside every distractor matched)."""
    from wit.dedupe.augly_suite import FAMILIES

    res, names = out["results"], list(out["results"])
    lines = ["| copy | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in out["kinds"]:
        lines.append(f"| {k} | " + " | ".join(f"{res[c][k]['right'] / max(1, res[c][k]['n']):.3f}" for c in names) + " |")
    augly = [k for k in out["kinds"] if k.startswith(AUGLY)]

    def recall(c, ks):
        """Recall over ``ks``, with each fold's after it when there are two."""
        both = sum(res[c][k]["right"] for k in ks) / max(1, sum(res[c][k]["n"] for k in ks))
        per = [sum(res[c][k]["folds"][f][0] for k in ks) / max(1, sum(res[c][k]["folds"][f][1] for k in ks))
               for f in range(out["folds"])]
        return f"{both:.3f}" + (" (" + " / ".join(f"{v:.3f}" for v in per) + ")" if len(per) > 1 else "")

    if augly:
        lines.append("| **AugLy, all** (per fold) | " + " | ".join(f"**{recall(c, augly)}**" for c in names) + " |")
        for fam, members in FAMILIES.items():
            ks = [AUGLY + m for m in members if AUGLY + m in augly]
            lines.append(f"| family: {fam} | " + " | ".join(recall(c, ks) for c in names) + " |")
    lines.append("| false matches (FPR; per fold) | " + " | ".join(
        f"{res[c]['_fp']} ({res[c]['_fp'] / max(1, res[c]['_neg']):.4f}; {' / '.join(map(str, res[c]['_fp_folds']))})"
        for c in names) + " |")
    tp_all = {c: sum(res[c][k]["tp"] for k in out["kinds"]) for c in names}
    right_all = {c: sum(res[c][k]["right"] for k in out["kinds"]) for c in names}
    lines.append("| copies matched to another eval image | " + " | ".join(
        f"{tp_all[c] - right_all[c]}" for c in names) + " |")
    lines.append("| precision (all copies) | " + " | ".join(
        f"{right_all[c] / max(1, tp_all[c] + res[c]['_fp']):.4f}" for c in names) + " |")
    lines.append("| describe ms/image | " + " | ".join(
        f"{out['timing'][c]['describe_ms_per_image']}" for c in names) + " |")
    thresholds = {c: out["timing"][c]["embed_threshold"] for c in names if out["timing"][c].get("embed_threshold")}
    if thresholds:
        lines.append("| embedding threshold | " + " | ".join(
            f"{thresholds[c]:.4f}" if c in thresholds else "" for c in names) + " |")
    lines.append(f"\ndescriptor cost (ms/image, one process): {json.dumps(out['costs'])}")
    return "\n".join(lines)


def table(out: dict) -> str:
    lines = []
    for name, r in out["results"].items():
        fp, n_neg = r["_fp"], r["_neg"]
        lines.append(f"\n### {name}: {fp} false matches among {n_neg} distractors "
                     f"(FPR {fp / max(1, n_neg):.4f}); {out['timing'][name]}")
        lines.append("| perturbation | recall | precision | right item | eval copies |")
        lines.append("|---|---|---|---|---|")
        for k in out["kinds"]:
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
    ap.add_argument("--embed-threshold", type=float, default=None)
    ap.add_argument("--embed-only", action="store_true", help="only the embedding-only configuration")
    ap.add_argument("--suite", default="all", choices=["wit", "augly", "all"])
    ap.add_argument("--learned", action="store_true", help="train (or reuse) a learned descriptor per fold")
    ap.add_argument("--checkpoint-dir", default="runs/dedupe_quality", help="where --learned keeps fold checkpoints")
    ap.add_argument("--learned-steps", type=int, default=None)
    ap.add_argument("--details", action="store_true", help="also the per-configuration tables")
    ap.add_argument("--limit", type=int, default=None, help="eval photos per fold (default: all 125)")
    ap.add_argument("--only", default=None, help="comma-separated configuration names to run (default: all)")
    args = ap.parse_args()
    emb = make_embedder(args.model, args.checkpoint, args.embed_threshold)
    t0 = time.perf_counter()
    out = evaluate(args.threshold, args.folds, emb, args.embed_only, args.suite,
                   args.checkpoint_dir if args.learned else None, args.learned_steps,
                   args.only.split(",") if args.only else None, args.limit)
    print(f"## dedupe_quality (pHash <= {args.threshold} bits, flip-aware, {args.folds} folds, "
          f"{time.perf_counter() - t0:.0f} s)")
    print(matrix(out))
    if args.details:
        print(table(out))


if __name__ == "__main__":
    main()
