"""``generate(root, size, seed)``: write a mini-web's static content and its manifest.

Static content: web images (img/), fault-route bodies (fault/), eval sets in ImageFolder layout
(eval/<set>/<class>/), a mini Wikipedia dump and hourly pageviews (wiki/, pageviews/), and the
page plan (which image appears on which page with which alt text). Pages and crawl files need
the server's URL and are written later by ``write_crawl``. Same seed, same bytes.
"""

from __future__ import annotations

import io
import json
import logging
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from wit.world import captions as cap
from wit.world.concepts import kind, vocabulary
from wit.world.reasons import BOMB_SIDE, FAULT_ROUTES, LARGE_BYTES
from wit.world.render import BACKGROUNDS, draw
from wit.world.wiki import write_pageviews, write_wiki
from wit.world.world import MANIFEST, World

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeSpec:
    images: int  # regular web images (planted copies and fault routes come on top)
    eval_per_class: int
    faults_per_kind: int
    filler_pages: int  # Wikipedia articles not about a concept
    pageview_hours: int


SIZES = {
    "tiny": SizeSpec(images=380, eval_per_class=6, faults_per_kind=2, filler_pages=200, pageview_hours=6),
    "small": SizeSpec(images=3000, eval_per_class=10, faults_per_kind=4, filler_pages=700, pageview_hours=24),
}
PERTURBATIONS = ("resize", "jpeg", "crop", "jitter", "flip")
PLANT_FRACTION = 0.10
FORMATS = (("jpeg", ".jpg", 0.6), ("png", ".png", 0.25), ("webp", ".webp", 0.15))
EXT = {f: e for f, e, _ in FORMATS}


def _encode(img: Image.Image, fmt: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=6)
    else:
        img.save(buf, "WEBP", quality=quality, method=2)
    return buf.getvalue()


def _side_pair(rng: random.Random) -> tuple[int, int]:
    """Sizes from 48 px to 1500 px, mostly small; a few extreme aspect ratios for the filter."""
    u = rng.random()
    side = rng.randint(48, 96) if u < 0.08 else rng.randint(96, 320) if u < 0.75 else \
        rng.randint(320, 640) if u < 0.93 else rng.randint(640, 1024) if u < 0.98 else rng.randint(1024, 1500)
    v = rng.random()
    aspect = rng.uniform(0.75, 1.33) if v < 0.85 else rng.uniform(0.5, 2.0) if v < 0.96 else rng.uniform(3.2, 4.0)
    w, h = (side, max(48, int(side / aspect))) if aspect >= 1 else (max(48, int(side * aspect)), side)
    return w, h


def _perturb(img: Image.Image, how: str, rng: random.Random) -> tuple[Image.Image, str, int]:
    """A perturbed copy of an eval image: (image, format, JPEG quality)."""
    w, h = img.size
    if how == "resize":
        f = rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.2, 1.5)])
        return img.resize((max(8, int(w * f)), max(8, int(h * f))), Image.BICUBIC), "jpeg", 90
    if how == "jpeg":
        return img, "jpeg", rng.randint(25, 45)
    if how == "crop":
        fx, fy = rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.07)  # <= 14% of each side in all
        box = (int(w * fx), int(h * fy), w - int(w * rng.uniform(0.0, 0.07)), h - int(h * rng.uniform(0.0, 0.07)))
        return img.crop(box), "jpeg", 90
    if how == "jitter":
        out = ImageEnhance.Brightness(img).enhance(rng.uniform(0.88, 1.12))
        out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.88, 1.12))
        return ImageEnhance.Color(out).enhance(rng.uniform(0.85, 1.15)), "png", 90
    if how == "flip":
        return ImageOps.mirror(img), "jpeg", 90
    raise ValueError(f"unknown perturbation {how!r}")


def _bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid PNG header declaring side x side pixels over a few hundred bytes of data."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + \
        chunk(b"IEND", b"")


def _large_png(seed: int) -> tuple[bytes, int, int]:
    """Incompressible noise, so the PNG is about LARGE_BYTES on disk."""
    side = int((LARGE_BYTES / 3) ** 0.5) + 8
    pixels = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
    return buf.getvalue(), side, side


def _zipf_counts(concepts: list[str], total: int, rng: random.Random) -> dict[str, int]:
    """Zipf-like image counts per concept (rank order drawn from the seed), at least 4 each."""
    order = concepts[:]
    rng.shuffle(order)
    weights = [1.0 / (r + 1) for r in range(len(order))]
    z = sum(weights)
    return {c: max(4, round(total * w / z)) for c, w in zip(order, weights)}


def generate(root: str | Path, size: str = "tiny", seed: int = 0) -> World:
    """Write the static content of a mini-web under ``root``; return its World (no crawl yet)."""
    if size not in SIZES:
        raise ValueError(f"world size must be one of {sorted(SIZES)}, got {size!r}")
    spec = SIZES[size]
    root = Path(root).resolve()
    for sub in ("img", "fault", "eval", "wiki", "pageviews", "page", "crawl"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"wit-world/{size}/{seed}")
    vocab = vocabulary(size)
    concepts = vocab["shapes"] + vocab["objects"]
    counts = _zipf_counts(concepts, spec.images, rng)
    images: dict[str, dict] = {}

    # Eval sets (ImageFolder) and the planted copies of some of their items.
    eval_meta, plants = {}, []
    for set_name, classes in vocab.items():
        items = []
        for cls in classes:
            (root / "eval" / set_name / cls).mkdir(parents=True, exist_ok=True)
            for i in range(spec.eval_per_class):
                r = random.Random(f"eval/{seed}/{set_name}/{cls}/{i}")
                img = draw([cls], (r.randint(160, 288), r.randint(160, 288)), r)
                rel = f"{cls}/{i:04d}.jpg"
                (root / "eval" / set_name / rel).write_bytes(_encode(img, "jpeg", 92))
                items.append((rel, cls, img))
        eval_meta[set_name] = {"dir": f"eval/{set_name}", "classes": classes, "items": len(items)}
        picked = rng.sample(items, max(1, round(PLANT_FRACTION * len(items))))
        for j, (rel, cls, img) in enumerate(picked):
            plants.append((set_name, rel, cls, img, PERTURBATIONS[j % len(PERTURBATIONS)]))

    # Web images: one slot per concept occurrence plus the planted copies, in seeded order.
    slots: list[tuple] = [("web", c) for c, n in counts.items() for _ in range(n)]
    slots += [("plant", p) for p in plants]
    rng.shuffle(slots)
    refs: list[dict] = []  # (path, alt) occurrences, grouped into pages below
    for idx, (what, payload) in enumerate(slots):
        r = random.Random(f"img/{seed}/{idx}")
        if what == "web":
            cs = [payload]
            if r.random() < 0.08:
                cs.append(r.choice([c for c in concepts if kind(c) != kind(payload)]))
            bg = r.choice(BACKGROUNDS)
            w, h = _side_pair(r)
            img = draw(cs, (w, h), r, background=bg)
            fmt = r.choices([f for f, _, _ in FORMATS], [p for _, _, p in FORMATS])[0]
            quality, planted = 90, None
        else:
            set_name, rel, cls, src, how = payload
            cs, bg = [cls], "plain"
            img, fmt, quality = _perturb(src, how, r)
            w, h = img.size
            planted = {"eval_set": set_name, "eval_item": rel, "perturbation": how}
        path = f"/img/{idx:06d}{EXT[fmt]}"
        (root / path.lstrip("/")).write_bytes(_encode(img, fmt, quality))
        images[path] = {"concepts": cs, "captions": [], "format": fmt, "width": w, "height": h,
                        "expected": "ok", "planted": planted, "in_crawl": True}
        if planted:
            refs.append({"path": path, "alt": cap.concept_caption(cs, r, bg, w)})
            continue
        u = r.random()
        alt = cap.concept_caption(cs, r, bg, w) if u < 0.74 else cap.noise_caption(r) if u < 0.83 else \
            cap.foreign_caption(r) if u < 0.92 else ""
        refs.append({"path": path, "alt": alt})
        v = r.random()
        if v < 0.05:  # the same pair again on another page
            refs.append({"path": path, "alt": alt})
        elif v < 0.12:  # the same image with another caption
            refs.append({"path": path, "alt": cap.concept_caption(cs, r, bg, w)})

    # Fault routes, captioned with tail concepts so balancing keeps them and they reach download.
    tail = sorted(concepts, key=lambda c: (counts[c], c))[: max(3, len(concepts) // 3)]
    bomb = _bomb_png()
    (root / "fault" / "bomb.png").write_bytes(bomb)
    large, lw, lh = _large_png(seed)
    (root / "fault" / "large.png").write_bytes(large)
    for kind_, reason in FAULT_ROUTES.items():
        for n in range(spec.faults_per_kind):
            r = random.Random(f"fault/{seed}/{kind_}/{n}")
            concept = r.choice(tail)
            path = f"/fault/{kind_}/{n}"
            entry = {"route": kind_, "concepts": [concept], "captions": [], "format": None, "width": None,
                     "height": None, "expected": reason, "planted": None, "in_crawl": True, "body": None}
            if kind_ in ("slow", "robots", "truncated", "hop"):
                w, h = r.randint(96, 256), r.randint(96, 256)
                body = _encode(draw([concept], (w, h), r), "jpeg")
                rel = f"img/hop-{n}.jpg" if kind_ == "hop" else f"fault/{kind_}-{n}.jpg"
                (root / rel).write_bytes(body)
                entry.update(format="jpeg", width=w, height=h, body=rel)
                if kind_ == "hop":
                    entry.update(body=None, redirect_to="/" + rel)
                    images["/" + rel] = {"concepts": [concept], "captions": [], "format": "jpeg", "width": w,
                                         "height": h, "expected": "ok", "planted": None, "in_crawl": False}
                if kind_ == "robots":
                    entry["robots_tag"] = ("noai", "noimageai")[n % 2]
            elif kind_ == "html":
                rel = f"fault/html-{n}.html"
                (root / rel).write_text(f"<!doctype html><html><head><title>{concept}</title></head><body>"
                                        f"<p>This page is about the {concept}.</p></body></html>\n")
                entry["body"] = rel
            elif kind_ == "wrongtype":
                rel = f"fault/wrongtype-{n}.bin"
                (root / rel).write_bytes(b"GIF87?" + r.randbytes(2048))
                entry["body"] = rel
            elif kind_ == "bomb":
                entry.update(format="png", width=BOMB_SIDE, height=BOMB_SIDE, body="fault/bomb.png")
            elif kind_ == "large":
                entry.update(format="png", width=lw, height=lh, body="fault/large.png")
            images[path] = entry
            refs.append({"path": path, "alt": cap.concept_caption([concept], r, "plain", 200)})

    # Pages: the references in seeded order, 6-10 per page; src written absolute, root-relative or relative.
    rng.shuffle(refs)
    pages: dict[str, dict] = {}
    i = p = 0
    while i < len(refs):
        n = rng.randint(6, 10)
        links = []
        for ref in refs[i:i + n]:
            ref["src"] = rng.choices(["absolute", "root", "relative"], [0.4, 0.3, 0.3])[0]
            images[ref["path"]]["captions"].append(ref["alt"])
            links.append(ref)
        pages[f"/page/{p:05d}.html"] = {"title": f"Gallery {p}", "links": links}
        i += n
        p += 1

    wiki = write_wiki(root / "wiki", concepts, counts, random.Random(f"wiki/{seed}"), spec.filler_pages)
    pageviews = write_pageviews(root / "pageviews", wiki["articles"], counts,
                                random.Random(f"pageviews/{seed}"), spec.pageview_hours)
    manifest = {
        "format": 1,
        "size": size,
        "seed": seed,
        "concepts": concepts,
        "concept_counts": counts,
        "reasons": dict(FAULT_ROUTES),
        "images": images,
        "pages": pages,
        "eval": eval_meta,
        "wiki": {k: v for k, v in wiki.items() if k != "articles"},
        "pageviews": pageviews,
        "crawl": None,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False))
    log.info("generated %s world (seed %d) at %s: %d images, %d pages", size, seed, root, len(images), len(pages))
    return World.load(root)
