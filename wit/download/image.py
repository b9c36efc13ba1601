"""Turn downloaded bytes into the stored image: header checks, decode, resize, JPEG, descriptors.

Geometry follows img2dataset's Resizer (same modes, same rounding) so outputs are comparable.
The image is decoded once, at full resolution, because the pixel hash must be the one the eval
index computes (``descriptors.pixel_hash``: xxh3-128 of the full-resolution pixels after
``convert("RGB")``), so an exact web copy of an eval image is recognised. Undamaged RGB JPEGs (most
of the web) are decoded by simplejpeg straight into the array the hash and the resize read
(``decode_rgb_jpeg``: Pillow's pixels, without Pillow's copy); everything else by Pillow. The pHash and its mirror
image's pHash, the centre-region pHash and its mirror's, and the pHash inside the image's edge bands
(padding, caption bands) (``descriptors.image_hashes``, the function the eval index uses) are computed
from the resized image (before any crop or border) while it is in memory: pHash is resolution-robust,
and filter and dedupe then need not decode the stored JPEG.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from wit.imagehash.descriptors import ImageHashes, image_hashes, pixel_hash, pixel_hash_rgb

MODES = ("no", "keep_ratio", "center_crop", "border")


@dataclass(frozen=True)
class Prepared:
    jpg: bytes | None
    width: int = 0
    height: int = 0
    orig_width: int = 0
    orig_height: int = 0
    reason: str = ""
    phash: int = 0
    phash_flip: int = 0
    pixel_xxh3: str = ""
    phash_centre: int = 0
    phash_centre_flip: int = 0
    phash_trimmed: int | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jpg).hexdigest() if self.jpg else ""


class PixelBudget:
    """Bounds the pixels decoded at once by a worker's threads; an image over the budget decodes alone.

    A full decode holds ~3-4 bytes per pixel (twice that briefly while it is copied), so without a
    bound 16 threads on 50-megapixel images need gigabytes at once.
    """

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        self._used = 0
        self._cv = threading.Condition()

    @contextlib.contextmanager
    def hold(self, n: int):
        n = min(n, self.pixels)
        with self._cv:
            self._cv.wait_for(lambda: self._used + n <= self.pixels)
            self._used += n
        try:
            yield
        finally:
            with self._cv:
                self._used -= n
                self._cv.notify_all()


_UNBOUNDED = contextlib.nullcontext()


def target_size(w: int, h: int, image_size: int, mode: str) -> tuple[int, int]:
    """The (width, height) img2dataset's Resizer gives before any crop or padding."""
    if mode == "no":
        return w, h
    scale = image_size / (min(w, h) if mode in ("keep_ratio", "center_crop") else max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def open_header(body: bytes, content_type: str = "", max_pixels: int = 50_000_000) -> tuple[Image.Image | None, str]:
    """Open lazily (header only) and refuse oversized images before any pixel is decoded."""
    try:
        img = Image.open(io.BytesIO(body))
    except Image.DecompressionBombError:
        return None, "decompression_bomb"
    except (UnidentifiedImageError, OSError, ValueError):
        return None, "decode_error" if content_type.startswith("image/") else "not_an_image"
    w, h = img.size
    if w * h > max_pixels:
        return None, "decompression_bomb"
    if w < 1 or h < 1:
        return None, "decode_error"
    return img, ""


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))  # white matte, like img2dataset
        return Image.alpha_composite(bg, img).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def prepare(body: bytes, *, image_size: int = 256, resize_mode: str = "keep_ratio", max_pixels: int = 50_000_000,
            quality: int = 95, content_type: str = "", budget: PixelBudget | None = None) -> Prepared:
    """Decode ``body``, resize like img2dataset and re-encode as JPEG; failures are reason codes."""
    img, reason = open_header(body, content_type, max_pixels)
    if img is None:
        return Prepared(None, reason=reason)
    with budget.hold(img.size[0] * img.size[1]) if budget else _UNBOUNDED:
        return _prepare(img, image_size, resize_mode, quality, body)


def decode_rgb_jpeg(body: bytes, img: Image.Image) -> np.ndarray | None:
    """The (H, W, 3) RGB pixels of an RGB JPEG decoded by libjpeg-turbo through simplejpeg straight into
    an array, or None where Pillow must decode it: another format or mode, or any decoder warning
    (simplejpeg's ``strict``: a truncated scan, corrupt data), so a damaged file gets exactly Pillow's
    verdict (kept, or ``decode_error``) as before.

    Pillow's own pixels (the same libjpeg-turbo decode: accurate integer IDCT, smooth chroma upsampling;
    tested), without Pillow's copy of the pixels into an array (~1.8 ms of a 1-megapixel image, under the
    GIL) and ~20 % faster; EXIF orientation is ignored, as Pillow does."""
    if img.format != "JPEG" or img.mode != "RGB":
        return None
    import simplejpeg

    try:
        arr = simplejpeg.decode_jpeg(body, colorspace="RGB", fastdct=False, fastupsample=False, strict=True)
    except Exception:  # noqa: BLE001 - ValueError for errors and (strict) warnings; any failure: Pillow decides
        return None
    if arr.shape[:2] != (img.size[1], img.size[0]):
        return None
    return arr


def _resize_array(arr: np.ndarray, tw: int, th: int) -> Image.Image:
    """img2dataset's geometry; when shrinking by 2x or more in two steps, as Pillow's ``reduce(k)`` then
    INTER_AREA over the rest (< 2x): k x k block averages (OpenCV's fast integer INTER_AREA path, ~10x
    its general one), the last, partial block row and column averaged over the pixels they hold, as
    ``reduce`` does. Otherwise OpenCV's INTER_AREA (shrinking) or INTER_LANCZOS4 (enlarging), as
    img2dataset does."""
    import cv2

    h, w = arr.shape[:2]
    k = min(w // tw, h // th)
    if k < 2:
        interp = cv2.INTER_AREA if tw < w else cv2.INTER_LANCZOS4
        return Image.fromarray(cv2.resize(arr, (tw, th), interpolation=interp))
    w2, h2 = w // k, h // k
    rw, rh = w - w2 * k, h - h2 * k
    small = cv2.resize(arr[: h2 * k, : w2 * k], (w2, h2), interpolation=cv2.INTER_AREA)
    if rw:  # the partial column of blocks: the rw leftover columns averaged per k rows
        small = np.hstack([small, cv2.resize(arr[: h2 * k, w2 * k:], (1, h2), interpolation=cv2.INTER_AREA)])
    if rh:
        bottom = cv2.resize(arr[h2 * k:, : w2 * k], (w2, 1), interpolation=cv2.INTER_AREA)
        if rw:
            corner = arr[h2 * k:, w2 * k:].reshape(-1, arr.shape[2]).mean(axis=0).round().astype(np.uint8)
            bottom = np.hstack([bottom, corner[None, None, :]])
        small = np.vstack([small, bottom])
    interp = cv2.INTER_AREA if tw < small.shape[1] else cv2.INTER_LANCZOS4
    return Image.fromarray(cv2.resize(small, (tw, th), interpolation=interp))


def _prepare(img: Image.Image, image_size: int, resize_mode: str, quality: int, body: bytes = b"") -> Prepared:
    ow, oh = img.size
    tw, th = target_size(ow, oh, image_size, resize_mode)
    try:
        # full resolution: the pixel hash must see the pixels the eval index hashes
        arr = decode_rgb_jpeg(body, img) if body else None
        if arr is None:
            img.load()
            if img.mode == "RGB":  # one copy of the pixels serves the hash and the resize
                arr = np.asarray(img)
                pixel_xxh3 = pixel_hash_rgb(arr)
            else:
                pixel_xxh3 = pixel_hash(img)
                img = _to_rgb(img)
                arr = np.asarray(img) if (tw, th) != img.size else None
        else:
            pixel_xxh3 = pixel_hash_rgb(arr)
            img = None
        if (tw, th) != (ow, oh):
            img = _resize_array(arr, tw, th)
        elif img is None:
            img = Image.fromarray(arr)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return Prepared(None, orig_width=ow, orig_height=oh, reason="decode_error")
    hashes = image_hashes(img)
    if resize_mode == "center_crop":
        left, top = (tw - image_size) // 2, (th - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
    elif resize_mode == "border":
        canvas = Image.new("RGB", (image_size, image_size), (255, 255, 255))
        canvas.paste(img, ((image_size - img.size[0]) // 2, (image_size - img.size[1]) // 2))
        img = canvas
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return _prepared(out.getvalue(), img.size[0], img.size[1], ow, oh, hashes, pixel_xxh3)


def _prepared(jpg: bytes, w: int, h: int, ow: int, oh: int, hashes: ImageHashes, pixel_xxh3: str) -> Prepared:
    return Prepared(jpg, w, h, ow, oh, phash=hashes.phash, phash_flip=hashes.phash_flip, pixel_xxh3=pixel_xxh3,
                    phash_centre=hashes.centre, phash_centre_flip=hashes.centre_flip, phash_trimmed=hashes.trimmed)


def prepare_img2dataset(body: bytes, resizer, *, max_pixels: int = 50_000_000, content_type: str = "",
                        budget: PixelBudget | None = None) -> Prepared:
    """Same contract as ``prepare`` but decoding/resizing with img2dataset's own ``Resizer``."""
    img, reason = open_header(body, content_type, max_pixels)
    if img is None:
        return Prepared(None, reason=reason)
    with budget.hold(img.size[0] * img.size[1]) if budget else _UNBOUNDED:
        return _prepare_img2dataset(body, img, resizer)


def _prepare_img2dataset(body: bytes, img: Image.Image, resizer) -> Prepared:
    jpg, w, h, ow, oh, err = resizer(io.BytesIO(body))
    if err:
        return Prepared(None, reason="decode_error")
    try:  # the Resizer keeps its pixels to itself: decode once more for the descriptors
        img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return Prepared(None, orig_width=ow, orig_height=oh, reason="decode_error")
    return _prepared(jpg, w, h, ow, oh, image_hashes(img), pixel_hash(img))
