"""The mini-web's visual vocabulary: colour x shape pairs, textures and simple drawable objects."""

from __future__ import annotations

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "blue": (35, 75, 210),
    "green": (40, 165, 60),
    "yellow": (240, 210, 30),
    "orange": (245, 135, 25),
    "purple": (130, 50, 170),
}
SHAPES = ("circle", "square", "triangle", "star", "heart")
TEXTURES = ("stripes", "checkerboard", "dots")
OBJECTS = ("house", "tree", "sun", "car", "fish", "flower", "boat", "moon",
           "cloud", "apple", "kite", "mushroom", "umbrella", "balloon")

_SIZES = {
    # (colours, shapes, objects)
    "tiny": (4, 4, 8),
    "small": (6, 5, 14),
}


def vocabulary(size: str) -> dict[str, list[str]]:
    """Concepts of a world size, grouped: "shapes" (colour + shape, plus textures) and "objects"."""
    if size not in _SIZES:
        raise ValueError(f"world size must be one of {sorted(_SIZES)}, got {size!r}")
    n_col, n_shape, n_obj = _SIZES[size]
    shapes = [f"{c} {s}" for s in SHAPES[:n_shape] for c in list(COLOURS)[:n_col]]
    return {"shapes": shapes + list(TEXTURES), "objects": list(OBJECTS[:n_obj])}


def kind(concept: str) -> str:
    """"shape" (colour + shape), "texture" or "object"."""
    if concept in TEXTURES:
        return "texture"
    if concept in OBJECTS:
        return "object"
    return "shape"


def with_article(concept: str) -> str:
    """"a red circle", "an orange star", "stripes" (textures are mass nouns here)."""
    if concept in ("stripes", "dots"):
        return concept
    return ("an " if concept[0] in "aeiou" else "a ") + concept
