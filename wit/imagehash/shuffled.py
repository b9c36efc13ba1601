"""Pixel-shuffled copies: an eval image whose pixels were permuted (AugLy's ShufflePixels at its
default factor 1.0) keeps nothing spatial, so no hash, embedding or keypoint can find it. What it keeps
is its colours: the multiset of pixels is the original's.

A downloaded copy has been re-encoded (JPEG) and resized, which averages neighbouring shuffled pixels,
so its colour histogram is not the original's. The index therefore stores, per eval image, the colour
histogram of the image as such a copy would arrive: shuffled with a fixed seed, JPEG-encoded and
stored by download (``expected_histogram``, the storing function is the caller's). A query is compared
only when it looks shuffled (neighbouring pixels two apart barely correlated: ``looks_shuffled``), and
it is a copy when its histogram is close to one eval image's (Hellinger distance <= ``MAX_DISTANCE``)
and much closer than to any other (``RATIO``): two photos of the same colours (sky over water) have
near-identical histograms, and the ratio test is what keeps them apart or declines.

Measured on the 125 eval photos of benchmarks/dedupe_quality.py (fold 0), AugLy's ShufflePixels
copies JPEG-encoded twice: 123 of 125 found, and 1 of 125 pixel-shuffled non-eval photos matched (two
photos of one colour scheme). A copy's distance to its own eval image is largest where JPEG's chroma
subsampling clips saturated colours. The expected histogram assumes a copy at its eval image's size,
stored at download's default; each further JPEG pass moves it (one more: 110 of 125).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np

BINS = 8  # per channel: 512 colour cells. Finer cells are less robust to a further JPEG pass (measured on
# 125 AugLy copies: 8 bins 123 found, 110 after one more JPEG; 16 bins 121 and 92; the same 1 false match)
MAX_DISTANCE = 0.06  # Hellinger distance (1 - Bhattacharyya coefficient) to the nearest eval image
RATIO = 0.1  # ... at most this fraction of the distance to the second nearest
# Correlation of pixels two apart (grey, along rows and columns) below which an image is compared.
# Shuffled copies: <= 0.36 (upscaled small ones are the highest); photos: 0.25 at the very least, 0.49
# for the lowest 0.1 % (benchmarks/dedupe_quality.py's distractors). Only a cost gate: the ratio test
# decides.
GATE = 0.5
SEED = 20240101  # the fixed permutation an eval image is shuffled with (any permutation will do)
JPEG_QUALITY = 90


def _grey(arr: np.ndarray) -> np.ndarray:
    """The mean of the channels, float32 (summed channel by channel: numpy's mean over the last axis of
    a small array is several times slower)."""
    if arr.ndim != 3:
        return arr.astype(np.float32)
    s = arr[..., 0].astype(np.float32)
    for c in range(1, arr.shape[2]):
        s += arr[..., c]
    return s / np.float32(arr.shape[2])


def lag2_correlation(arr: np.ndarray) -> float:
    """Correlation of grey values two pixels apart, along rows and columns (1.0 for a flat image); taken
    on every other row and column (neighbours there are two apart): a quarter of the pixels."""
    if min(arr.shape[:2]) < 8:
        return 1.0
    g = _grey(arr[::2, ::2])
    # Pearson's r over the (left, right) and (up, down) pairs together, from sums (no copies of the pairs)
    pairs = ((g[:, :-1], g[:, 1:]), (g[:-1, :], g[1:, :]))
    n = sum(x.size for x, _ in pairs)
    sx = sum(float(x.sum(dtype=np.float64)) for x, _ in pairs)
    sy = sum(float(y.sum(dtype=np.float64)) for _, y in pairs)
    sxx = sum(float(np.vdot(x, x)) for x, _ in pairs)
    syy = sum(float(np.vdot(y, y)) for _, y in pairs)
    sxy = sum(float((x * y).sum(dtype=np.float64)) for x, y in pairs)
    vx, vy = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
    if vx < 1e-6 or vy < 1e-6:
        return 1.0
    return float((sxy / n - sx * sy / n / n) / np.sqrt(vx * vy))


def looks_shuffled(arr: np.ndarray) -> bool:
    """Whether an RGB (h, w, 3) uint8 array looks like permuted pixels."""
    return lag2_correlation(arr) < GATE


def histogram(arr: np.ndarray) -> np.ndarray:
    """Square roots of the colour histogram's shares (``BINS``^3 cells, float32), so that the dot
    product of two is their Bhattacharyya coefficient."""
    q = (arr.reshape(-1, 3).astype(np.int32) * BINS) >> 8
    counts = np.bincount((q[:, 0] * BINS + q[:, 1]) * BINS + q[:, 2], minlength=BINS ** 3).astype(np.float32)
    return np.sqrt(counts / max(1.0, float(counts.sum())))


def shuffle_pixels(img, seed: int = SEED):
    """``img`` (PIL) with every pixel moved by one fixed random permutation."""
    from PIL import Image

    arr = np.asarray(img.convert("RGB"))
    flat = arr.reshape(-1, 3).copy()
    np.random.default_rng(seed).shuffle(flat)
    return Image.fromarray(flat.reshape(arr.shape))


def expected_histogram(img, store: Callable[[bytes], bytes]) -> np.ndarray:
    """The histogram of ``img`` as a pixel-shuffled copy of it arrives: shuffled, saved as JPEG, then
    ``store``d (download's resize and re-encoding: JPEG bytes in, stored JPEG bytes out)."""
    from PIL import Image

    b = io.BytesIO()
    shuffle_pixels(img).save(b, "JPEG", quality=JPEG_QUALITY)
    stored = Image.open(io.BytesIO(store(b.getvalue())))
    return histogram(np.asarray(stored.convert("RGB")))


@dataclass
class ShuffleIndex:
    """Expected shuffled-copy histograms of the eval images, one owner (an eval index row) each."""

    histograms: np.ndarray  # (n, BINS**3) float16
    owners: np.ndarray  # (n,) int64

    def __post_init__(self) -> None:
        self.histograms = np.asarray(self.histograms).reshape(-1, BINS ** 3)
        self.owners = np.asarray(self.owners, np.int64).reshape(-1)
        if len(self.histograms) != len(self.owners):
            raise ValueError("shuffle index: histograms and owners differ in length")
        self._dense = self.histograms.astype(np.float32)

    def __len__(self) -> int:
        return len(self.owners)

    def match(self, arr: np.ndarray) -> tuple[int, float]:
        """(owner row, distance) of the eval image the RGB array ``arr`` is a shuffled copy of, or
        (-1, nearest distance); (-1, nan) when ``arr`` does not look shuffled."""
        if not len(self) or not looks_shuffled(arr):
            return -1, float("nan")
        d = 1.0 - self._dense @ histogram(arr)
        if len(d) == 1:
            best, second = 0, None
        else:
            best, second = np.argpartition(d, 1)[:2]
            if d[second] < d[best]:
                best, second = second, best
        dist = float(d[best])
        ok = dist <= MAX_DISTANCE and (second is None or dist <= RATIO * float(d[second]))
        return (int(self.owners[best]), dist) if ok else (-1, dist)

    def to_bytes(self) -> bytes:
        b = io.BytesIO()
        np.savez_compressed(b, histograms=self.histograms.astype(np.float16), owners=self.owners)
        return b.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ShuffleIndex":
        with np.load(io.BytesIO(data)) as z:
            return cls(z["histograms"], z["owners"])

