"""Procedural drawings of concepts with PIL, so an image really shows what its caption says.

Every shape is a polygon in a unit frame ([-1, 1], y down) mapped to pixels by a ``Frame``
(centre, scale, rotation), so position, size and rotation come from the seed for free.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from wit.world.concepts import COLOURS, kind

BACKGROUNDS = ("plain", "gradient", "striped", "speckled")


@dataclass(frozen=True)
class Frame:
    cx: float
    cy: float
    scale: float
    angle: float = 0.0

    def pt(self, x: float, y: float) -> tuple[float, float]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        return (self.cx + self.scale * (x * c - y * s), self.cy + self.scale * (x * s + y * c))

    def poly(self, pts) -> list[tuple[float, float]]:
        return [self.pt(x, y) for x, y in pts]


def _circle(cx: float, cy: float, r: float, n: int = 48, start: float = 0.0, stop: float = 2 * math.pi):
    return [(cx + r * math.cos(start + (stop - start) * i / n), cy + r * math.sin(start + (stop - start) * i / n))
            for i in range(n + 1)]


def _rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _star(points: int = 5, inner: float = 0.45):
    return [((1.0 if i % 2 == 0 else inner) * math.cos(-math.pi / 2 + i * math.pi / points),
             (1.0 if i % 2 == 0 else inner) * math.sin(-math.pi / 2 + i * math.pi / points))
            for i in range(2 * points)]


def _heart():
    pts = []
    for i in range(60):
        t = 2 * math.pi * i / 60
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17, -y / 17 + 0.1))
    return pts


SHAPE_POLYS = {
    "circle": _circle(0, 0, 1),
    "square": _rect(-0.85, -0.85, 0.85, 0.85),
    "triangle": [(0, -1), (0.95, 0.75), (-0.95, 0.75)],
    "star": _star(),
    "heart": _heart(),
}


def _jitter(rgb, rng: random.Random, amount: int = 18) -> tuple[int, int, int]:
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in rgb)


def _background(img: Image.Image, rng: random.Random, style: str) -> None:
    """Low-saturation backgrounds, so the concept's colour stands out."""
    w, h = img.size
    d = ImageDraw.Draw(img)
    base = rng.randint(150, 245)
    tint = [base + rng.randint(-12, 12) for _ in range(3)]
    d.rectangle([0, 0, w, h], fill=tuple(tint))
    if style == "gradient":
        other = [rng.randint(120, 250)] * 3
        for y in range(0, h, max(1, h // 32)):
            f = y / max(1, h)
            d.rectangle([0, y, w, y + max(1, h // 32)],
                        fill=tuple(int(a * (1 - f) + b * f) for a, b in zip(tint, other)))
    elif style == "striped":
        step = max(4, min(w, h) // rng.randint(6, 12))
        shade = tuple(max(0, v - 25) for v in tint)
        for x in range(-h, w + h, 2 * step):
            d.polygon([(x, 0), (x + step, 0), (x + step + h, h), (x + h, h)], fill=shade)
    elif style == "speckled":
        for _ in range(max(20, w * h // 400)):
            x, y = rng.randrange(w), rng.randrange(h)
            g = rng.randint(100, 240)
            d.point((x, y), fill=(g, g, g))


def _texture(img: Image.Image, concept: str, rng: random.Random) -> None:
    w, h = img.size
    d = ImageDraw.Draw(img)
    palette = list(COLOURS.values()) + [(20, 20, 20), (250, 250, 250)]
    a, b = rng.sample(palette, 2)
    a, b = _jitter(a, rng), _jitter(b, rng)
    d.rectangle([0, 0, w, h], fill=b)
    n = rng.randint(5, 10)
    step = max(3, min(w, h) / n)
    if concept == "stripes":
        frame = Frame(w / 2, h / 2, 1.0, rng.choice([0, math.pi / 2, math.pi / 4, -math.pi / 4]))
        span = int(w + h)
        for i in range(-span, span, int(2 * step)):
            d.polygon(frame.poly(_rect(i, -span, i + step, span)), fill=a)
    elif concept == "checkerboard":
        for i in range(int(w / step) + 1):
            for j in range(int(h / step) + 1):
                if (i + j) % 2 == 0:
                    d.rectangle([i * step, j * step, (i + 1) * step, (j + 1) * step], fill=a)
    else:  # dots
        r = step * rng.uniform(0.2, 0.32)
        for i in range(int(w / step) + 1):
            for j in range(int(h / step) + 1):
                x, y = (i + 0.5) * step, (j + 0.5) * step
                d.ellipse([x - r, y - r, x + r, y + r], fill=a)


def _object(d: ImageDraw.ImageDraw, concept: str, f: Frame, rng: random.Random) -> None:  # noqa: C901
    J = lambda rgb, amount=18: _jitter(rgb, rng, amount)  # noqa: E731
    if concept == "house":
        d.polygon(f.poly(_rect(-0.65, -0.1, 0.65, 0.85)), fill=J((200, 170, 120)))
        d.polygon(f.poly([(-0.85, -0.1), (0.85, -0.1), (0, -0.85)]), fill=J((170, 40, 30)))
        d.polygon(f.poly(_rect(-0.15, 0.35, 0.15, 0.85)), fill=J((90, 55, 30)))
        d.polygon(f.poly(_rect(0.3, 0.1, 0.5, 0.3)), fill=J((150, 200, 240)))
    elif concept == "tree":
        d.polygon(f.poly(_rect(-0.13, 0.1, 0.13, 0.95)), fill=J((110, 70, 35)))
        d.polygon(f.poly(_circle(0, -0.3, 0.65)), fill=J((35, 140, 45)))
    elif concept == "sun":
        col = J((250, 200, 20))
        for i in range(12):
            a = 2 * math.pi * i / 12
            d.polygon(f.poly([(0.55 * math.cos(a - 0.12), 0.55 * math.sin(a - 0.12)),
                              (0.55 * math.cos(a + 0.12), 0.55 * math.sin(a + 0.12)),
                              (0.98 * math.cos(a), 0.98 * math.sin(a))]), fill=col)
        d.polygon(f.poly(_circle(0, 0, 0.5)), fill=col)
    elif concept == "car":
        body = J(rng.choice(list(COLOURS.values())))
        d.polygon(f.poly(_rect(-0.95, -0.1, 0.95, 0.4)), fill=body)
        d.polygon(f.poly([(-0.5, -0.1), (-0.3, -0.5), (0.35, -0.5), (0.55, -0.1)]), fill=body)
        d.polygon(f.poly(_rect(-0.25, -0.42, 0.3, -0.15)), fill=(170, 210, 240))
        for x in (-0.55, 0.55):
            d.polygon(f.poly(_circle(x, 0.45, 0.22)), fill=(25, 25, 25))
    elif concept == "fish":
        col = J(rng.choice([(245, 135, 25), (35, 75, 210), (240, 210, 30)]))
        d.polygon(f.poly([(0.4, 0), (0.95, -0.45), (0.95, 0.45)]), fill=col)
        d.polygon(f.poly([(0.6 * math.cos(t) - 0.15, 0.35 * math.sin(t)) for t in
                          (2 * math.pi * i / 40 for i in range(40))]), fill=col)
        d.polygon(f.poly(_circle(-0.45, -0.08, 0.07, 12)), fill=(10, 10, 10))
    elif concept == "flower":
        d.line(f.poly([(0, 0), (0, 1)]), fill=(40, 140, 50), width=max(1, int(f.scale * 0.1)))
        petal = J(rng.choice([(230, 80, 150), (215, 35, 35), (130, 50, 170), (250, 250, 250)]))
        for i in range(6):
            a = 2 * math.pi * i / 6
            d.polygon(f.poly(_circle(0.38 * math.cos(a), -0.3 + 0.38 * math.sin(a), 0.26, 20)), fill=petal)
        d.polygon(f.poly(_circle(0, -0.3, 0.2, 20)), fill=(245, 205, 30))
    elif concept == "boat":
        d.polygon(f.poly([(-0.95, 0.35), (0.95, 0.35), (0.6, 0.75), (-0.6, 0.75)]), fill=J((120, 70, 35)))
        d.line(f.poly([(0, 0.35), (0, -0.9)]), fill=(60, 40, 20), width=max(1, int(f.scale * 0.06)))
        d.polygon(f.poly([(0.05, -0.85), (0.05, 0.25), (0.7, 0.25)]), fill=J((245, 245, 245)))
        d.polygon(f.poly([(-0.05, -0.7), (-0.05, 0.25), (-0.55, 0.25)]), fill=J((230, 230, 230)))
    elif concept == "moon":
        a0, a1 = math.atan2(0.846, 0.533), math.atan2(0.846, 0.083)
        outer = _circle(0, 0, 0.9, 40, a0, 2 * math.pi - a0)
        inner = _circle(0.405, 0, 0.765, 40, 2 * math.pi - a1, a1)
        d.polygon(f.poly(outer + inner), fill=J((225, 200, 80)))
    elif concept == "cloud":
        col = J((250, 250, 252), 5)
        for x, y, r in [(-0.5, 0.15, 0.35), (0, -0.1, 0.5), (0.5, 0.15, 0.35), (0, 0.25, 0.35)]:
            d.polygon(f.poly(_circle(x, y, r, 24)), fill=col)
        d.line(f.poly(_circle(0, -0.1, 0.5, 24, math.pi, 2 * math.pi)), fill=(150, 150, 160), width=1)
    elif concept == "apple":
        d.polygon(f.poly(_circle(0, 0.15, 0.7)), fill=J((200, 30, 30)))
        d.line(f.poly([(0, -0.5), (0.1, -0.85)]), fill=(90, 55, 30), width=max(1, int(f.scale * 0.08)))
        d.polygon(f.poly([(0.1, -0.65), (0.5, -0.85), (0.3, -0.55)]), fill=(40, 150, 50))
    elif concept == "kite":
        d.polygon(f.poly([(0, -0.95), (0.5, -0.2), (0, 0.5), (-0.5, -0.2)]), fill=J(rng.choice(list(COLOURS.values()))))
        d.line(f.poly([(0, 0.5), (0.2, 0.7), (-0.1, 0.85), (0.15, 1.0)]), fill=(40, 40, 40), width=2)
    elif concept == "mushroom":
        d.polygon(f.poly(_rect(-0.2, 0.0, 0.2, 0.85)), fill=J((240, 230, 210)))
        d.polygon(f.poly(_circle(0, 0.05, 0.8, 40, math.pi, 2 * math.pi)), fill=J((200, 35, 30)))
        for x, y in [(-0.4, -0.25), (0.1, -0.5), (0.45, -0.2)]:
            d.polygon(f.poly(_circle(x, y, 0.1, 12)), fill=(250, 250, 250))
    elif concept == "umbrella":
        d.line(f.poly([(0, -0.1), (0, 0.8)]), fill=(40, 40, 40), width=max(1, int(f.scale * 0.06)))
        d.line(f.poly(_circle(0.15, 0.8, 0.15, 12, 0, math.pi)), fill=(40, 40, 40), width=max(1, int(f.scale * 0.06)))
        d.polygon(f.poly(_circle(0, 0, 0.9, 40, math.pi, 2 * math.pi)), fill=J(rng.choice(list(COLOURS.values()))))
    elif concept == "balloon":
        d.line(f.poly([(0, 0.45), (0.1, 0.7), (-0.05, 1.0)]), fill=(60, 60, 60), width=1)
        d.polygon(f.poly([(0.55 * math.cos(t), -0.2 + 0.65 * math.sin(t)) for t in
                          (2 * math.pi * i / 40 for i in range(40))]), fill=J(rng.choice(list(COLOURS.values()))))
    else:
        raise ValueError(f"no drawing for object {concept!r}")


def _scene_light(img: Image.Image, rng: random.Random, alpha: float) -> Image.Image:
    """Blend a smooth random light field over the background.

    Real photos differ from each other most in their low frequencies (layout, lighting); without
    this, two drawings of the same concept share their coarse structure and a perceptual hash
    (which keeps only low frequencies) cannot tell them apart, unlike on real web images.
    """
    w, h = img.size
    n = 5
    cells = bytes(rng.randint(40, 250) for _ in range(n * n * 3))
    field = Image.frombytes("RGB", (n, n), cells).resize((w, h), Image.Resampling.BICUBIC)
    return Image.blend(img, field, alpha)


def draw(concepts: list[str], size: tuple[int, int], rng: random.Random, background: str | None = None) -> Image.Image:
    """Render one or more concepts side by side on a background chosen from ``rng``."""
    w, h = size
    img = Image.new("RGB", (w, h))
    if concepts and kind(concepts[0]) == "texture":
        _texture(img, concepts[0], rng)
        img = _scene_light(img, rng, 0.3)
        concepts = concepts[1:]
    else:
        _background(img, rng, background or rng.choice(BACKGROUNDS))
        img = _scene_light(img, rng, 0.6)
    d = ImageDraw.Draw(img)
    n = max(1, len(concepts))
    for i, concept in enumerate(concepts):
        cell_w = w / n
        r_max = min(cell_w, h) / 2
        scale = r_max * rng.uniform(0.55, 0.85)
        cx = cell_w * i + cell_w / 2 + rng.uniform(-1, 1) * (r_max - scale)
        cy = h / 2 + rng.uniform(-1, 1) * (h / 2 - scale)
        if kind(concept) == "shape":
            colour, shape = concept.split(" ", 1)
            f = Frame(cx, cy, scale, rng.uniform(0, 2 * math.pi) if shape != "heart" else rng.uniform(-0.4, 0.4))
            d.polygon(f.poly(SHAPE_POLYS[shape]), fill=_jitter(COLOURS[colour], rng))
        elif kind(concept) == "object":
            _object(d, concept, Frame(cx, cy, scale, rng.uniform(-0.25, 0.25)), rng)
        else:  # a texture as the second concept: a textured patch
            patch = Image.new("RGB", (max(2, int(2 * scale)), max(2, int(2 * scale))))
            _texture(patch, concept, rng)
            img.paste(patch, (int(cx - scale), int(cy - scale)))
    return img
