"""Uniform borders (padding, letterboxing, square padding) trimmed before hashing: a padded copy's
pHash is far from the original's, the trimmed one's is not."""

from __future__ import annotations

import numpy as np

TOLERANCE = 24  # per channel, of the corner's colour: JPEG ringing along the border stays inside it
MIN_KEEP = 0.25  # a "border" leaving less than this much of the area is the picture itself


def trim_border(img, tolerance: int = TOLERANCE, min_keep: float = MIN_KEEP):
    """``img`` without the edge rows and columns of its top-left corner's colour, or ``img`` itself
    when there is no such border (or trimming would leave less than ``min_keep`` of the area)."""
    a = np.asarray(img.convert("RGB"), dtype=np.int16)
    h, w = a.shape[:2]
    content = np.abs(a - a[0, 0]).max(axis=2) > tolerance
    rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    if not len(rows):
        return img
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    if box == (0, 0, w, h) or (box[2] - box[0]) * (box[3] - box[1]) < min_keep * w * h:
        return img
    return img.crop(box)
