"""Local features for copy detection: ORB keypoints, matched to one eval image and verified by a
RANSAC homography (OpenCV).

A global descriptor (pHash, a learned embedding) describes the whole picture, so a copy that shows
only part of an eval image, or shows it inside something else, looks like another picture: an image
pasted onto a background or a screenshot, another image laid over part of it, stripes across it, a
perspective warp. Keypoints still find the part that is there. A query's ORB descriptors are matched
to the index's (approximate nearest neighbours in Hamming space: FLANN's LSH tables, Lowe's ratio
test); an eval image with at least ``MIN_GOOD`` matches is checked geometrically, and it is a copy when
a plausible homography (orientation kept, area change within 1/100-100) explains at least
``MIN_INLIERS`` distinct ones (``_supported``: repeated texture otherwise lets RANSAC collapse many
matches onto a few points). Unrelated photos share almost no consistent matches, so the inlier count
is the threshold.

Both sides are described at the size download stores images (``SIDE``, the shorter side), so an eval
image and its downloaded copy are seen at the same scale. Per image: ~2.5 ms for the features, and a
search that grows with the index, and for a query that does not match a second look at twice the
size with 2,000 features (``UPSCALE``), which finds pictures shown small: ~34 ms for an image that
matches nothing, against 125 eval images of 1,000 keypoints each. An opt-in (``wit dedupe index
--keypoints``), not part of the default detector.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

KEYPOINTS = 500  # ORB features per query image (250 halves the search but loses overlays: dedupe_quality)
# ORB features per eval image: more than a query's, so that the part of it a copy shows (a corner of it
# pasted onto a background) keeps some. Measured on 125 AugLy backgrounds: 500 -> 0.66, 1,000 -> 0.76,
# 1,500 -> 0.77 (with the second look below)
EVAL_KEYPOINTS = 1000
SIDE = 256  # the shorter side images are described at (download's image_size)
RATIO = 0.8  # Lowe's ratio test: best match clearly better than the second
MIN_GOOD = 8  # matches to one eval image before its geometry is checked
# distinct inliers of a plausible homography for a copy (any homography fits 4 pairs exactly). Unrelated
# photos reach 4 (625 edited non-eval photos), unrelated synthetic graphics (flat shapes: logos, diagrams)
# 6, copies 45-171 (tests/unit/test_dedupe_keypoints.py); 6 would add 0.004 of AugLy recall
MIN_INLIERS = 8
RANSAC_PIXELS = 5.0
MAX_SCALE = 100.0  # a homography's area change (|det| of its linear part) beyond 1/MAX_SCALE..MAX_SCALE: degenerate
DISTINCT_PIXELS = 3  # inliers count once per cell of this size on each side (repeated texture maps many to one)
# FLANN's LSH: tables, key bits, multi-probe level. Measured against 125 eval images of 1,000 keypoints,
# both looks, a distractor: 4 x 20 bits probing neighbouring buckets (level 1) ~59 ms; 8 x 16 bits,
# own bucket only, ~34 ms with the same recall (AugLy backgrounds 0.78 against 0.76); 4 x 20 bits at
# level 0 ~19 ms but backgrounds 0.69
LSH_TABLES, LSH_KEY_BITS, LSH_PROBE_LEVEL = 8, 16, 0
# The second look at a query the first did not match: upscaled, with more features. A picture shown small
# (in a screenshot's post, ~1/3 of its eval size at 256 px) has its detail below ORB's finest scale, and
# the page around it takes most of 500 features. Measured on 125 AugLy screenshots (eval images at 1,000
# features): 0.27 -> 0.94 (1,500 features at 2x: 0.92); the 2,450 distractors reach 7 distinct inliers.
UPSCALE, UPSCALED_KEYPOINTS = 2.0, 2000


@dataclass(frozen=True)
class Features:
    """ORB keypoints of one image: positions (k, 2) float32 and binary descriptors (k, 32) uint8."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.descriptors)


def _orb(n: int):
    import cv2

    return cv2.ORB_create(nfeatures=n)


def grey_for_keypoints(img) -> np.ndarray:
    """The greyscale pixels (uint8) of a PIL image, downscaled so its shorter side is at most ``SIDE``."""
    from PIL import Image

    grey = img if img.mode == "L" else img.convert("L")
    w, h = grey.size
    short = min(w, h)
    if short > SIDE:
        grey = grey.resize((max(1, round(w * SIDE / short)), max(1, round(h * SIDE / short))),
                           Image.Resampling.BILINEAR)
    return np.asarray(grey)


def _none() -> Features:
    return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))


def orb_features(img, n: int = KEYPOINTS, upscale: float = 1.0) -> Features:
    """ORB keypoints of a PIL image (at most ``n``; none for an image too small or too flat); with
    ``upscale`` > 1 found on the image enlarged that much, positions given in the unenlarged image."""
    grey = grey_for_keypoints(img)
    if min(grey.shape) < 32:
        return _none()
    if upscale != 1.0:
        import cv2

        grey = cv2.resize(grey, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    kps, desc = _orb(n).detectAndCompute(grey, None)
    if desc is None:
        return _none()
    return Features(np.array([k.pt for k in kps], np.float32).reshape(-1, 2) / upscale, desc.astype(np.uint8))


def _supported(h, src: np.ndarray, dst: np.ndarray) -> int:
    """How many distinct inliers support the homography ``h`` (0 when it is degenerate).

    RANSAC fits repeated texture too: a keyboard's keys or a fence's slats give many matches that a
    homography collapsing them onto a few points "explains" (measured: 7 of 9 inliers onto one point,
    area change 0.007, mirrored). A copy's homography keeps orientation and a plausible scale, and its
    inliers are spread over both pictures: inliers are counted once per ``DISTINCT_PIXELS`` cell on
    each side, the fewer of the two."""
    if h is None or not len(src):
        return 0
    det = float(np.linalg.det(h[:2, :2] / h[2, 2])) if h[2, 2] else 0.0
    if not 1 / MAX_SCALE <= det <= MAX_SCALE:
        return 0
    cells = lambda pts: len(np.unique(np.floor(pts / DISTINCT_PIXELS).astype(np.int64), axis=0))  # noqa: E731
    return min(cells(src), cells(dst))


class KeypointIndex:
    """The keypoints of many eval images, one owner (an eval index row) per descriptor."""

    def __init__(self, points: np.ndarray, descriptors: np.ndarray, owners: np.ndarray):
        self.points = np.asarray(points, np.float32).reshape(-1, 2)
        self.descriptors = np.ascontiguousarray(descriptors, np.uint8).reshape(-1, 32)
        self.owners = np.asarray(owners, np.int64)
        if not (len(self.points) == len(self.descriptors) == len(self.owners)):
            raise ValueError("keypoint index: points, descriptors and owners differ in length")
        self._matcher = None

    @classmethod
    def build(cls, features: list[tuple[int, Features]]) -> "KeypointIndex":
        """From (owner row, features) pairs."""
        pts = [f.points for _, f in features if len(f)]
        desc = [f.descriptors for _, f in features if len(f)]
        owners = [np.full(len(f), row, np.int64) for row, f in features if len(f)]
        if not desc:
            return cls(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), np.zeros(0, np.int64))
        return cls(np.concatenate(pts), np.concatenate(desc), np.concatenate(owners))

    def __len__(self) -> int:
        return len(self.descriptors)

    def _flann(self):
        if self._matcher is None:
            import cv2

            cv2.setRNGSeed(0)  # the LSH tables' hash functions: the same index, the same answers
            m = cv2.FlannBasedMatcher(dict(algorithm=6, table_number=LSH_TABLES, key_size=LSH_KEY_BITS,
                                           multi_probe_level=LSH_PROBE_LEVEL), dict(checks=32))
            m.add([self.descriptors])
            m.train()
            self._matcher = m
        return self._matcher

    def match(self, query: Features) -> tuple[int, int]:
        """(owner row, inliers) of the eval image ``query`` copies, or (-1, best inlier count below the
        threshold)."""
        import cv2

        if len(query) < MIN_GOOD or len(self) < 2:
            return -1, 0
        pairs = self._flann().knnMatch(query.descriptors, k=2)
        q, t = [], []
        for p in pairs:
            if len(p) == 2 and p[0].distance < RATIO * p[1].distance:
                q.append(p[0].queryIdx)
                t.append(p[0].trainIdx)
        if len(q) < MIN_GOOD:
            return -1, 0
        q, t = np.array(q), np.array(t)
        owner = self.owners[t]
        cands, counts = np.unique(owner, return_counts=True)
        best, best_n = -1, 0
        for c in cands[counts >= MIN_GOOD][np.argsort(-counts[counts >= MIN_GOOD])]:
            sel = owner == c
            src, dst = query.points[q[sel]], self.points[t[sel]]
            h, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PIXELS)
            n = _supported(h, src[mask.ravel() > 0], dst[mask.ravel() > 0]) if mask is not None else 0
            if n > best_n:
                best, best_n = int(c), n
        return (best, best_n) if best_n >= MIN_INLIERS else (-1, best_n)

    def find(self, img) -> tuple[int, int]:
        """``match`` for a PIL image: its features at ``SIDE``, then (no match) upscaled ones."""
        j, n = self.match(orb_features(img))
        if j < 0:
            j, n2 = self.match(orb_features(img, UPSCALED_KEYPOINTS, UPSCALE))
            n = max(n, n2)
        return j, n

    def to_bytes(self) -> bytes:
        b = io.BytesIO()
        np.savez_compressed(b, points=self.points, descriptors=self.descriptors, owners=self.owners)
        return b.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "KeypointIndex":
        with np.load(io.BytesIO(data)) as z:
            return cls(z["points"], z["descriptors"], z["owners"])
