"""Decode encoded images into one uint8 batch of square crops, cheaply (the loader shares cores with training).

Per image: OpenCV decodes (JPEGs at the smallest DCT scale whose short side still covers the
target, read from the frame header, so a 512 px photo for a 64 px model decodes at 1/4 size),
a square of side = the short side is cut (at a random or the central offset), and that square is
resized straight into its slot of a preallocated [N, S, S, 3] batch: area averaging when shrinking
by 2x or more, bicubic otherwise. Cropping before resizing gives the same augmentation as CLIP's
"resize the short side, then random square crop" while resizing only the pixels that are kept.
Formats OpenCV cannot read go through Pillow; what neither reads is reported, not raised.
"""

from __future__ import annotations

import io
import random
from typing import Sequence

import cv2
import numpy as np
import torch

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# IMREAD_REDUCED_COLOR_k is "reduce by k" | IMREAD_COLOR (BGR); swap the colour bit for RGB output.
_REDUCED = tuple((k, (flag & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB) for k, flag in
                 ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)))


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame header, or None when it is not a readable JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, end = 2, len(data) - 9
    while pos < end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _SOF:
            return int.from_bytes(data[pos + 5:pos + 7], "big"), int.from_bytes(data[pos + 7:pos + 9], "big")
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


def decode_rgb(data: bytes, size: int) -> np.ndarray | None:
    """HxWx3 uint8 RGB whose short side is >= ``size`` where the source allows; None if unreadable."""
    flag = cv2.IMREAD_COLOR_RGB
    hw = jpeg_size(data)
    if hw is not None:
        flag = next((f for k, f in _REDUCED if min(hw) // k >= size), flag)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        image = _decode_pil(data)
    return image


def _decode_pil(data: bytes) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def crop_into(image: np.ndarray, out: np.ndarray, rng: random.Random | None) -> None:
    """Cut a square of the short side (random offset with ``rng``, else central) and resize it into ``out``."""
    h, w = image.shape[:2]
    side, size = min(h, w), out.shape[0]
    if rng is None:
        y, x = (h - side) // 2, (w - side) // 2
    else:
        y, x = rng.randint(0, h - side), rng.randint(0, w - side)
    square = image[y:y + side, x:x + side]
    if side == size:
        out[...] = square
    else:
        cv2.resize(square, (size, size), dst=out, interpolation=cv2.INTER_AREA if side >= 2 * size else cv2.INTER_CUBIC)


def decode_batch(datas: Sequence[bytes], size: int,
                 rng: random.Random | None = None) -> tuple[torch.Tensor, list[bool]]:
    """uint8 [n, 3, size, size] crops of the readable images (in order) and, per input, whether it was readable."""
    out = np.empty((len(datas), size, size, 3), np.uint8)
    ok = []
    n = 0
    for data in datas:
        image = decode_rgb(data, size)
        ok.append(image is not None)
        if image is not None:
            crop_into(image, out[n], rng)
            n += 1
    return torch.from_numpy(out[:n]).permute(0, 3, 1, 2).contiguous(), ok
