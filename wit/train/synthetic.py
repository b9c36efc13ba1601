"""Small rendered image-text data (coloured shapes) for the trainer's tests and benchmark.

A concept is (colour, shape); its caption is "a photo of a red circle". Images vary in position,
size and background so the model has to look, yet a tiny CLIP learns them in a few hundred steps.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220),
    "yellow": (235, 215, 30), "purple": (140, 40, 180), "orange": (245, 140, 20),
}
SHAPES = ("circle", "square", "triangle")


def concepts(n_colours: int = 3, n_shapes: int = 2) -> list[tuple[str, str]]:
    return [(c, s) for c in list(COLOURS)[:n_colours] for s in SHAPES[:n_shapes]]


def render(colour: str, shape: str, size: int, rng: random.Random) -> Image.Image:
    grey = rng.randint(200, 255)
    img = Image.new("RGB", (size, size), (grey, grey, grey))
    d = ImageDraw.Draw(img)
    r = rng.uniform(0.22, 0.4) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    fill = tuple(max(0, min(255, v + rng.randint(-20, 20))) for v in COLOURS[colour])
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def caption(colour: str, shape: str) -> str:
    return f"a photo of a {colour} {shape}"


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_shards(out: str | Path, n_shards: int = 2, per_shard: int = 64, size: int = 48, seed: int = 0,
                 classes: list[tuple[str, str]] | None = None) -> list[str]:
    """Write ``out/NNNNN.tar`` webdataset shards (KEY.jpg, KEY.txt, KEY.json); return their paths."""
    import webdataset as wds

    classes = classes or concepts()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for s in range(n_shards):
        path = out / f"{s:05d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(per_shard):
                colour, shape = rng.choice(classes)
                key = f"{s:05d}{i:06d}"
                meta = {"uid": key, "caption": caption(colour, shape)}
                sink.write({"__key__": key, "jpg": jpeg(render(colour, shape, size, rng)),
                            "txt": caption(colour, shape), "json": json.dumps(meta)})
        paths.append(str(path))
    return paths


def write_imagefolder(root: str | Path, per_class: int = 10, size: int = 48, seed: int = 1,
                      classes: list[tuple[str, str]] | None = None) -> list[str]:
    """Write an ImageFolder eval set ``root/<colour_shape>/<n>.png``; return the class folder names."""
    classes = classes or concepts()
    root = Path(root)
    rng = random.Random(seed)
    names = []
    for colour, shape in classes:
        name = f"{colour}_{shape}"
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            render(colour, shape, size, rng).save(root / name / f"{i:04d}.png")
        names.append(name)
    return names
