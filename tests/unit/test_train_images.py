"""Batch image decoding: reduced JPEG decodes, square crops, CLIP's resize semantics, unreadable inputs."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image

from wit.train import images


def _encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _halves(w: int, h: int) -> Image.Image:
    """Left half red, right half blue."""
    img = Image.new("RGB", (w, h), (220, 20, 20))
    img.paste((20, 20, 220), (w // 2, 0, w, h))
    return img


@pytest.mark.parametrize("w,h", [(640, 480), (33, 300), (72, 72)])
def test_jpeg_size_reads_the_frame_header(w, h):
    assert images.jpeg_size(_encode(Image.new("RGB", (w, h)))) == (h, w)
    assert images.jpeg_size(_encode(Image.new("L", (w, h)), progressive=True)) == (h, w)
    assert images.jpeg_size(_encode(Image.new("RGB", (w, h)), "PNG")) is None


def test_large_jpegs_decode_at_a_reduced_scale_that_still_covers_the_target():
    data = _encode(Image.new("RGB", (640, 480), (10, 200, 30)))
    small = images.decode_rgb(data, 64)
    assert small.shape == (120, 160, 3)  # 1/4: 1/8 would give a 60 px short side < 64
    assert abs(int(small[..., 1].mean()) - 200) <= 3 and small[..., 0].mean() < 20  # RGB order
    assert images.decode_rgb(data, 480).shape == (480, 640, 3)


def test_center_crop_matches_pillow_resize_then_crop():
    """The same pixels as CLIP's eval transform (resize short side, centre crop), up to resampling noise."""
    rng = np.random.default_rng(0)
    # A smooth image: resampling filters differ slightly, content must not.
    yy, xx = np.mgrid[0:150, 0:300]
    arr = np.stack([xx * 255 // 300, yy * 255 // 150, (xx + yy) % 256 // 2 + 60], -1).astype(np.uint8)
    arr = np.clip(arr.astype(int) + rng.integers(-3, 4, arr.shape), 0, 255).astype(np.uint8)
    data = _encode(Image.fromarray(arr), "PNG")
    batch, ok = images.decode_batch([data], 48, rng=None)
    ref = Image.fromarray(arr).resize((96, 48), Image.BICUBIC).crop((24, 0, 72, 48))
    ref_t = torch.from_numpy(np.array(ref)).permute(2, 0, 1)
    assert ok == [True] and batch.shape == (1, 3, 48, 48) and batch.dtype == torch.uint8
    assert (batch[0].float() - ref_t.float()).abs().mean() < 4


def test_random_crops_move_along_the_long_side_and_follow_the_seed():
    data = _encode(_halves(200, 50), "PNG")
    a, _ = images.decode_batch([data] * 16, 32, random.Random(1))
    b, _ = images.decode_batch([data] * 16, 32, random.Random(1))
    assert torch.equal(a, b)
    red_share = (a[:, 0].float() > 128).float().mean(dim=(1, 2))
    assert red_share.min() == 0 and red_share.max() == 1  # crops from both ends
    assert 0 < red_share.mean() < 1


def test_unreadable_images_are_reported_and_skipped():
    good = _encode(Image.new("RGB", (40, 30), (200, 200, 0)))
    grey = _encode(Image.new("L", (40, 30), 90))
    gif = _encode(Image.new("P", (40, 30), 3), "GIF")
    batch, ok = images.decode_batch([good, b"not an image", grey, b"\xff\xd8\xff\xe0broken", gif], 24)
    assert ok == [True, False, True, False, True]
    assert batch.shape == (3, 3, 24, 24)
    assert torch.all(batch[1] == batch[1, 0, 0, 0])  # grey stays grey in all three channels
