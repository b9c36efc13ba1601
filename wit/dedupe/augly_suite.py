"""The AugLy image augmentations at their default parameters: the held-out copy-detection suite that
tests and ``benchmarks/dedupe_quality.py`` score detectors on (``augly`` is a test/benchmark
dependency, imported on first use).

Transforms that need a second image get another photo (overlay, background); the masked composite
blurs the image inside a centred ellipse. ``ApplyLambda`` (identity) and the ``Compose``/``OneOf``
combinators are left out. AugLy 1.0.0 predates Pillow 10 and NumPy 2: two attributes they removed
(``FreeTypeFont.getsize_multiline``, ``np.float``) are supplied while a transform runs.
"""

from __future__ import annotations

import contextlib
import inspect

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The families the copy-detection issue (#19) names, as AugLy transform names.
FAMILIES = {
    "vflip": ("VFlip",),
    "pad": ("Pad", "PadSquare"),
    "rotation": ("Rotate", "RandomRotation"),
    "perspective/skew": ("PerspectiveTransform", "Skew"),
    "crop (large)": ("Crop",),
    "overlays": ("OverlayEmoji", "RandomEmojiOverlay", "MemeFormat", "OverlayOntoBackgroundImage",
                 "OverlayOntoScreenshot", "MaskedComposite", "OverlayImage", "OverlayStripes"),
    "shuffle": ("ShufflePixels",),
}
SKIPPED = ("ApplyLambda", "Compose", "OneOf")


def _getsize(font, text: str) -> tuple[int, int]:
    """Pillow 9's ``FreeTypeFont.getsize``: the text's extent from the drawing origin (the offset above
    and left of the ink included), which is ``getbbox``'s right and bottom."""
    box = font.getbbox(text)
    return box[2], box[3]


def _getsize_multiline(self, text, direction=None, spacing=4, *args, **kwargs):
    """Pillow 9's ``getsize_multiline``: the widest line, and one line height (that of "A") plus
    ``spacing`` per line. A tighter box (the ink only) makes MemeFormat pick a larger font whose text
    spills over the picture's top rows, which AugLy under Pillow 9 never did."""
    lines = text.split("\n")
    return max(_getsize(self, line)[0] for line in lines), len(lines) * (_getsize(self, "A")[1] + spacing) - spacing


@contextlib.contextmanager
def _compat():
    added = []
    if not hasattr(ImageFont.FreeTypeFont, "getsize_multiline"):
        ImageFont.FreeTypeFont.getsize_multiline = _getsize_multiline
        added.append((ImageFont.FreeTypeFont, "getsize_multiline"))
    if "float" not in np.__dict__:
        np.float = float
        added.append((np, "float"))
    try:
        yield
    finally:
        for owner, name in added:
            delattr(owner, name)


def transform_names() -> list[str]:
    """Every AugLy image transform class this suite applies, sorted."""
    import augly.image as imaugs

    return sorted(n for n in imaugs.__all__ if inspect.isclass(getattr(imaugs, n)) and n not in SKIPPED
                  and hasattr(getattr(imaugs, n), "apply_transform"))


def _ellipse_mask(size: tuple[int, int]) -> Image.Image:
    m = Image.new("L", size, 0)
    w, h = size
    ImageDraw.Draw(m).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=255)
    return m


def augment(img: Image.Image, name: str, other: Image.Image) -> Image.Image:
    """``img`` edited by AugLy's ``name`` transform at its defaults (``other``: the second image where
    one is needed), as RGB."""
    import augly.image as imaugs

    img = img.convert("RGB")
    if name == "OverlayImage":
        t = imaugs.OverlayImage(overlay=other.convert("RGB"))
    elif name == "OverlayOntoBackgroundImage":
        t = imaugs.OverlayOntoBackgroundImage(background_image=other.convert("RGB"))
    elif name == "MaskedComposite":
        t = imaugs.MaskedComposite(transform_function=imaugs.Blur(radius=6), mask=_ellipse_mask(img.size))
    else:
        t = getattr(imaugs, name)()
    with _compat():
        return t(img).convert("RGB")


def suite(img: Image.Image, other: Image.Image, names: list[str] | None = None) -> dict[str, Image.Image]:
    """{transform name: edited copy} for every transform of the suite (or ``names``)."""
    return {n: augment(img, n, other) for n in (names or transform_names())}
