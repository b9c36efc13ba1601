"""Local features for copy detection: ORB keypoints, matched to one eval image and verified by a
RANSAC homography (OpenCV).

A global descriptor (pHash, a learned embedding) describes the whole picture, so a copy that shows
only part of an eval image, or shows it inside something else, looks like another picture: an image
pasted onto a background or a screenshot, another image laid over part of it, stripes across it, a
perspective warp. Keypoints still find the part that is there. A query's ORB descriptors are matched
to the index's (approximate nearest neighbours in Hamming space: hash tables, ``wit.imagehash.lsh``; Lowe's ratio
test); an eval image with at least ``MIN_GOOD`` matches is checked geometrically, and it is a copy when
a plausible homography (orientation kept, area change within 1/100-100) explains at least
``MIN_INLIERS`` distinct ones (``_supported``: repeated texture otherwise lets RANSAC collapse many
matches onto a few points). Unrelated photos share almost no consistent matches, so the inlier count
is the threshold.

Both sides are described at the size download stores images (``SIDE``, the shorter side), so an eval
image and its downloaded copy are seen at the same scale. Per image: ~2.1 ms for the features, a
search that grows with the index (~0.55 ms against 125 eval images of 1,000 keypoints), and, for a
query the first look does not match and where a cue says it may pay, a second look (``UPSCALE``):
~3.9 ms on average for a photo that matches nothing, one thread. An opt-in (``wit dedupe index
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
# Hash tables of the nearest-neighbour search (wit.imagehash.lsh: table t keys on the descriptor's 16-bit
# word t). Measured against 125 eval images of 1,000 keypoints: 8 tables find what OpenCV's FLANN LSH
# with 8 x 16 bits found (AugLy backgrounds 0.79); 4 tables of 20 bits (faiss) are 8x faster but lose
# backgrounds (0.69)
LSH_TABLES = 8
# A second look at a query the first did not match, of one of two kinds, each taken only where it may pay
# (``find``; "always" in tests and measurements):
# - A picture shown small in a page (a screenshot's post: ~1/3 of its eval size at 256 px) has its detail
#   below ORB's finest scale, and the page's text takes most of 500 features: the page is looked at
#   enlarged (UPSCALE, UPSCALED_KEYPOINTS) when it is flat enough to be a page (more than FLAT_CUE of its
#   8x8 blocks span <= FLAT_RANGE grey levels). Measured on 125 AugLy screenshots (fold 0): 35 found by
#   the first look, 121 with this one; 122 of the 125 are that flat, 11% of photos.
# - Part of a picture among other content (pasted onto a background, another picture laid over it) keeps
#   its scale but gets too few of 500 features: it is looked at again with WIDER_KEYPOINTS when the first
#   look's ratio-test matches hint at it: GEO_CUE of those to one eval image agree on a similarity
#   transform (cv2.estimateAffinePartial2D, RANSAC_PIXELS). On AugLy backgrounds this look finds more than
#   the enlarged one did (103 against 99 of 125 when taken on every image), at half its cost.
# Measured on the two folds of benchmarks/dedupe_quality.py (the copies no other descriptor finds, and
# ~2,450 distractors each): 11.8% of fold 0's distractors get a second look (10.7% the enlarged one);
# copies found by the first look alone 463 / 433, with the second taken always 572 / 546, as cued
# 560 / 539, at ~3.9 ms per distractor against ~8.3 always (one thread). Against download_throughput's
# index of 250 drawn pictures, 5% of its photos get one. The cue that counted votes alone (>= 4 to one
# image) fired on a third of those photos: few descriptors per drawn picture make random votes pile up.
UPSCALE, UPSCALED_KEYPOINTS = 2.0, 2000
WIDER_KEYPOINTS = 1500
FLAT_RANGE, FLAT_CUE = 4, 0.4
GEO_CUE, GEO_MIN_VOTES, GEO_OWNERS = 4, 3, 5  # agreeing matches; votes an eval image needs to be tried; how many tried
GEO_SCALE = 10.0  # a similarity changing size beyond 1/GEO_SCALE..GEO_SCALE does not count


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
    return grey_features(grey_for_keypoints(img), n, upscale)


def grey_features(grey: np.ndarray, n: int = KEYPOINTS, upscale: float = 1.0) -> Features:
    """``orb_features`` of greyscale pixels already at ``SIDE`` (``grey_for_keypoints``)."""
    if min(grey.shape) < 32:
        return _none()
    import cv2

    if upscale != 1.0:
        grey = cv2.resize(grey, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    kps, desc = _orb(n).detectAndCompute(grey, None)
    if desc is None:
        return _none()
    return Features(cv2.KeyPoint_convert(kps).astype(np.float32).reshape(-1, 2) / upscale, desc.astype(np.uint8))


def flat_share(grey: np.ndarray) -> float:
    """The share of the image's 8x8 blocks whose grey values span at most ``FLAT_RANGE`` levels."""
    import cv2

    h, w = (grey.shape[0] // 8) * 8, (grey.shape[1] // 8) * 8
    if not h or not w:
        return 0.0
    # each block's max and min: an 8x8 dilation and erosion anchored at the block's corner, read at every
    # 8th pixel (~0.04 ms; numpy's reduction over the blocks' two axes took ~0.5 ms)
    g = np.ascontiguousarray(grey[:h, :w])
    k = np.ones((8, 8), np.uint8)
    hi = cv2.dilate(g, k, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[::8, ::8]
    lo = cv2.erode(g, k, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[::8, ::8]
    return float(((hi.astype(np.int16) - lo) <= FLAT_RANGE).mean())


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
        self._search = None

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

    def prepare(self) -> None:
        """Build the search's hash tables now (else the first query does)."""
        self._lsh()

    def _lsh(self):
        if self._search is None:
            from wit.imagehash.lsh import HammingLSH

            self._search = HammingLSH(self.descriptors, LSH_TABLES)
        return self._search

    def match(self, query: Features) -> tuple[int, int]:
        """(owner row, inliers) of the eval image ``query`` copies, or (-1, best inlier count below the
        threshold)."""
        return self._match(query)[:2]

    def _match(self, query: Features) -> tuple[int, int, bool]:
        """``match``, and whether the ratio-test matches hint at a copy the first look could not verify:
        ``GEO_CUE`` of those to one eval image agree on a similarity transform."""
        import cv2

        if len(query) < 2 or len(self) < 2:
            return -1, 0, False
        dist, rows = self._lsh().knn2(query.descriptors)
        good = (rows[:, 1] >= 0) & (dist[:, 0] < RATIO * dist[:, 1])
        q, t = np.flatnonzero(good), rows[good, 0]
        if not len(q):
            return -1, 0, False
        owner = self.owners[t]
        cands, counts = np.unique(owner, return_counts=True)
        by_votes = np.argsort(-counts, kind="stable")
        best, best_n = -1, 0
        for c in cands[by_votes][counts[by_votes] >= MIN_GOOD]:
            sel = owner == c
            src, dst = query.points[q[sel]], self.points[t[sel]]
            h, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PIXELS)
            n = _supported(h, src[mask.ravel() > 0], dst[mask.ravel() > 0]) if mask is not None else 0
            if n > best_n:
                best, best_n = int(c), n
        if best_n >= MIN_INLIERS:
            return best, best_n, False
        cue = False
        for c in cands[by_votes][:GEO_OWNERS][counts[by_votes][:GEO_OWNERS] >= GEO_MIN_VOTES]:
            sel = owner == c
            m, inliers = cv2.estimateAffinePartial2D(query.points[q[sel]], self.points[t[sel]], method=cv2.RANSAC,
                                                     ransacReprojThreshold=RANSAC_PIXELS)
            if m is not None and int(inliers.sum()) >= GEO_CUE and (
                    1 / GEO_SCALE <= float(np.hypot(m[0, 0], m[1, 0])) <= GEO_SCALE):
                cue = True
                break
        return -1, best_n, cue

    def find(self, img, second_look: str = "cued") -> tuple[int, int]:
        """``match`` for a PIL image: its features at ``SIDE``, then, where those match nothing, a second
        look (see ``UPSCALE``): enlarged where the image is flat like a page, else with more features
        where the first look's matches hint at a copy. ``second_look``: "cued" (default); "always" (the
        enlarged look on a page, the wider one on anything else); "never"."""
        grey = grey_for_keypoints(img)
        j, n, cue = self._match(grey_features(grey))
        if j >= 0 or second_look == "never":
            return j, n
        if flat_share(grey) > FLAT_CUE:
            j, n2 = self.match(grey_features(grey, UPSCALED_KEYPOINTS, UPSCALE))
        elif cue or second_look == "always":
            j, n2 = self.match(grey_features(grey, WIDER_KEYPOINTS))
        else:
            return j, n
        return j, max(n, n2)

    def to_bytes(self) -> bytes:
        b = io.BytesIO()
        np.savez_compressed(b, points=self.points, descriptors=self.descriptors, owners=self.owners)
        return b.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "KeypointIndex":
        with np.load(io.BytesIO(data)) as z:
            return cls(z["points"], z["descriptors"], z["owners"])
