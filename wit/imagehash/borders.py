"""Edge bands trimmed before hashing: padding, letterboxing, square padding and caption bands.

A padded copy's pHash is far from the original's, and so is a meme's (the picture under a band of
text); the pHash of what is left inside the bands is not. ``band_box`` finds, on each side whose
outermost line is one colour, the furthest line of that colour within ``REACH`` of the side: for a
padded copy that is the padding's inner edge, for a caption band the blank line between the text
and the picture (every line of a band need not be blank, only its first and its last).
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 10  # grey levels off the band's colour a band line may take (JPEG noise on a flat band)
REACH = 0.75  # how far into the picture (a fraction of its height or width) a band may reach
MIN_KEEP = 0.25  # bands leaving less than this share of the area are the picture itself


def _band(lines: np.ndarray, reach: int, tolerance: int) -> int:
    """How many lines from the start of ``lines`` (2-D, line by line) the band there covers: 0 when
    the first line is not one colour, else one past the last line of that colour within ``reach``."""
    first = lines[0]
    colour = int(first[0])
    if int(first.max()) - colour > tolerance or colour - int(first.min()) > tolerance:
        return 0
    head = lines[:reach]
    plain = (head.max(axis=1) <= colour + tolerance) & (head.min(axis=1) >= colour - tolerance)
    return int(np.flatnonzero(plain)[-1]) + 1


def may_have_bands(grey, tolerance: int = TOLERANCE) -> bool:
    """False when no outermost line of the greyscale PIL image ``grey`` is one colour, so ``band_box``
    would find nothing; checked on the four lines alone (~10 us), before the pixels become an array."""
    w, h = grey.size
    if w < 2 or h < 2:
        return False
    for box in ((0, 0, w, 1), (0, h - 1, w, h), (0, 0, 1, h), (w - 1, 0, w, h)):
        line = grey.crop(box)
        colour = line.getpixel((0, 0))
        low, high = line.getextrema()
        if high - colour <= tolerance and colour - low <= tolerance:
            return True
    return False


def band_box(grey: np.ndarray, tolerance: int = TOLERANCE, reach: float = REACH,
             min_keep: float = MIN_KEEP) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of a greyscale image (2-D uint8 array) inside its edge bands, or
    None when it has none (or they would leave less than ``min_keep`` of the area)."""
    h, w = grey.shape
    if h < 2 or w < 2:
        return None
    rh, rw = max(1, int(h * reach)), max(1, int(w * reach))
    top = _band(grey, rh, tolerance)
    bottom = h - _band(grey[::-1], rh, tolerance)
    left = _band(grey.T, rw, tolerance)
    right = w - _band(grey.T[::-1], rw, tolerance)
    if (left, top, right, bottom) == (0, 0, w, h) or right <= left or bottom <= top:
        return None
    if (right - left) * (bottom - top) < min_keep * w * h:
        return None
    return left, top, right, bottom


def trim_border(img, tolerance: int = TOLERANCE, min_keep: float = MIN_KEEP):
    """``img`` without its edge bands (``band_box`` of its greyscale), or ``img`` itself when it has none."""
    box = band_box(np.asarray(img.convert("L")), tolerance, min_keep=min_keep)
    return img if box is None else img.crop(box)
