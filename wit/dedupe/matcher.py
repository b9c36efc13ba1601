"""The copy detector: which eval image, if any, a batch of images copies, and by which descriptor.

``CopyMatcher`` holds an ``EvalIndex`` and the detector's settings (per-set pHash thresholds, mirrors,
centre region, edge bands, learned embeddings). Dedupe's describe stage runs it on every downloaded
image, and the overlap analysis runs the same object on every training image, so what dedupe
removes and what the overlap split counts are judged by one detector. Free of Ray: a plain class on
lists of descriptors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from wit.imagehash.descriptors import centre_phash_batch, phash64_batch

log = logging.getLogger(__name__)


@dataclass
class CopyMatcher:
    """Matching order: identical pixels, then the whole-image pHash (and its mirror's) against the image,
    crop, rotation, turn and warp rows, then the centre-region pHash, then the pHash inside the edge
    bands, then (when the index holds them and ``embeddings``) the learned embedding, then (when the
    index holds them and ``shuffled``) the colour histogram of a pixel-shuffled copy, then (when the
    index holds them and ``keypoints``) ORB keypoints verified by a homography."""

    index: object  # wit.dedupe.index.EvalIndex
    threshold: int = 10
    thresholds: dict[str, int] = field(default_factory=dict)
    match_flips: bool = True
    centre_hash: bool = True
    trim_borders: bool = True
    embeddings: bool = True
    embed_threshold: float | None = None
    embed_thresholds: dict[str, float] = field(default_factory=dict)
    embed_batch: int = 64
    keypoints: bool = True  # match keypoints where the index holds them (``wit dedupe index --keypoints``)
    shuffled: bool = True  # match pixel-shuffled copies where the index holds them (``--shuffled``)
    # threads for the per-image pixel work (decoding, shuffled-copy histograms, keypoints); 0: OMP_NUM_THREADS
    # where set (Ray sets it to a worker's CPUs), else one per CPU. OpenCV, the keypoint search and Pillow
    # release the GIL, so one process's images use the cores it has
    threads: int = 0

    def __post_init__(self) -> None:
        index = self.index
        sets = set(index.sets.tolist())
        self.per_set = {s: self.thresholds.get(s, self.threshold) for s in sets}
        self.use_centre = bool(self.centre_hash and (index.variants == "centre").any())
        self.embedder = None
        if index.embeddings is not None and self.embeddings:
            from wit.dedupe.detector import embedder_for_index

            m = index.model
            self.embedder = embedder_for_index(m, self.embed_batch, dim=index.embeddings.shape[1])
            default = m.get("threshold", 0.95) if self.embed_threshold is None else self.embed_threshold
            self.embed_per_set = {s: self.embed_thresholds.get(s, default) for s in sets}
        elif index.embeddings is not None:
            log.info("copy detector: embedding matching disabled")
        kp = getattr(index, "keypoints", None)
        self.keypoint_index = kp if self.keypoints and kp is not None and len(kp) else None
        if self.keypoint_index is not None:
            self.keypoint_index.prepare()  # build the hash tables once, before threads share them
        sh = getattr(index, "shuffled", None)
        self.shuffle_index = sh if self.shuffled and sh is not None and len(sh) else None

    @property
    def needs_pixels(self) -> bool:
        """Whether every image must be decoded (embeddings, keypoints and colour histograms are taken
        from pixels)."""
        return self.embedder is not None or self.keypoint_index is not None or self.shuffle_index is not None

    def describe(self) -> dict:
        """The detector's configuration, for reports: what a copy is."""
        return {"pixel_hash": True, "phash_thresholds": dict(sorted(self.per_set.items())),
                "rows_per_image": self.index.rows_per_image(), "mirrors": self.match_flips,
                "centre": self.use_centre, "edge_bands": self.trim_borders,
                "embedding": dict(self.index.model, thresholds=self.embed_per_set) if self.embedder else None,
                "keypoints": self._keypoint_settings() if self.keypoint_index is not None else None,
                "shuffled": self._shuffle_settings() if self.shuffle_index is not None else None}

    @staticmethod
    def _keypoint_settings() -> dict:
        from wit.imagehash import keypoints as k

        return {"orb_features": k.KEYPOINTS, "side": k.SIDE, "ratio": k.RATIO, "min_inliers": k.MIN_INLIERS,
                "second_look": {"page": {"flat_share_over": k.FLAT_CUE, "upscale": k.UPSCALE,
                                         "orb_features": k.UPSCALED_KEYPOINTS},
                                "other": {"agreeing_matches": k.GEO_CUE, "orb_features": k.WIDER_KEYPOINTS}}}

    @staticmethod
    def _shuffle_settings() -> dict:
        from wit.imagehash import shuffled as s

        return {"bins": s.BINS, "max_distance": s.MAX_DISTANCE, "ratio": s.RATIO, "gate": s.GATE}

    def _nearest(self, hashes, flips, region, label, variants=None):
        index = self.index
        m = index.query(np.array(hashes, np.uint64), self.per_set, region=region, variants=variants)
        dist, idx = m.distance.astype(np.int32), m.index
        how = np.full(len(idx), label, dtype=object)
        if self.match_flips and flips is not None:
            # mirror images against the unaltered rows only: a flipped crop or rotation is a double
            # edit, and searching mirrors against 27 variants per image doubles the false matches
            mf = index.query(np.array(flips, np.uint64), self.per_set, region=region, variants=("image", "centre"))
            better = mf.distance < dist
            dist, idx, how = (np.where(better, mf.distance, dist), np.where(better, mf.index, idx),
                              np.where(better, label + "_flip", how))
        return idx, how

    def match(self, px, ph, phf, centre, imgs, err, trimmed=None) -> list:
        """Per row, (eval index row, descriptor) of its eval copy, or None.

        ``px``/``ph``/``phf``: pixel hash, pHash and mirror pHash per row; ``centre``: (centre pHash,
        mirror's) per row, None where the row has none (taken from ``imgs`` when decoded); ``err``: a
        non-empty string where the row has no usable image (never matched); ``trimmed``: the pHash inside
        the edge bands per row (None: no band), or None when no such column exists (then rows with
        pixels are trimmed here)."""
        index = self.index
        n = len(ph)
        if not len(index) or not n:
            return [None] * n
        idx, how = self._nearest(ph, phf, "full", "phash")
        found = [(j, f"{h}:{index.variants[j]}") if j >= 0 else None for j, h in zip(idx.tolist(), how)]
        for i, j in enumerate(index.exact(px).tolist()):
            if j >= 0:
                found[i] = (j, "exact")
        open_rows = [i for i in range(n) if found[i] is None and not err[i]]
        if self.use_centre and open_rows:
            todo = [i for i in open_rows if centre[i] is None and imgs[i] is not None]
            if todo:
                ch, chf = centre_phash_batch([imgs[i] for i in todo], with_flip=True)
                centre = list(centre)
                for i, c, cf in zip(todo, ch.tolist(), chf.tolist()):
                    centre[i] = (c, cf)
            rows = [i for i in open_rows if centre[i] is not None]
            cidx, chow = self._nearest([centre[i][0] for i in rows], [centre[i][1] for i in rows], "centre", "centre")
            for i, j, h in zip(rows, cidx.tolist(), chow):
                if j >= 0:
                    found[i] = (j, h)
        if self.trim_borders:
            self._match_trimmed([i for i in open_rows if found[i] is None], imgs, trimmed, found)
        with_pixels = [i for i in open_rows if found[i] is None and imgs[i] is not None]
        if self.embedder is not None and with_pixels:
            m = index.query_embeddings(self.embedder.embed([imgs[i] for i in with_pixels]), self.embed_per_set)
            for i, j in zip(with_pixels, m.index.tolist()):
                if j >= 0:
                    found[i] = (j, "embedding")
        rest = [i for i in with_pixels if found[i] is None]
        if rest and (self.shuffle_index is not None or self.keypoint_index is not None):
            for i, f in zip(rest, thread_map(lambda i: self._pixel_match(imgs[i]), rest, self.threads)):
                if f is not None:
                    found[i] = f
        return [f if f is not None and not err[i] else None for i, f in enumerate(found)]

    def _pixel_match(self, img) -> tuple[int, str] | None:
        """The shuffled-copy histogram (cheaper, and a shuffled image has no keypoints), then keypoints."""
        if self.shuffle_index is not None:
            j, _ = self.shuffle_index.match(np.asarray(img if img.mode == "RGB" else img.convert("RGB")))
            if j >= 0:
                return j, "shuffled"
        if self.keypoint_index is not None:
            j, _ = self.keypoint_index.find(img)
            if j >= 0:
                return j, "keypoints"
        return None

    def _match_trimmed(self, rows, imgs, trimmed, found) -> None:
        """Match the pHash inside each row's edge bands: the given one, else (no column, a null one from
        input written before download stored it) from the pixels where the row was decoded anyway."""
        from wit.imagehash.borders import band_box

        hashes = {i: trimmed[i] for i in rows if trimmed[i] is not None} if trimmed is not None else {}
        inside = {}
        for i in (i for i in rows if i not in hashes and imgs[i] is not None):
            grey = imgs[i].convert("L")
            if (box := band_box(np.asarray(grey))) is not None:
                inside[i] = grey.crop(box)
        if inside:
            hashes |= dict(zip(inside, phash64_batch(list(inside.values())).tolist()))
        if not hashes:
            return
        # against the image rows only, no mirror: a padded crop, turn or mirror is two edits, and the
        # inside of a screenshot's or a page's bands lies near some eval image's crop row more often
        # than a copy does (measured: benchmarks/dedupe_quality.py)
        tidx, thow = self._nearest(list(hashes.values()), None, "full", "trimmed", variants=("image",))
        for i, j, h in zip(hashes, tidx.tolist(), thow):
            if j >= 0:
                found[i] = (j, f"{h}:{self.index.variants[j]}")


def thread_map(fn, items: list, threads: int = 0) -> list:
    """``[fn(x) for x in items]`` on ``threads`` threads (0: OMP_NUM_THREADS, else one per CPU), in order;
    one thread, or one item, runs inline."""
    import os

    if not threads:
        omp = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(omp) if omp.isdigit() and int(omp) > 0 else os.cpu_count() or 1
    n = min(threads, len(items))
    if n <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, items))

