"""Nearest neighbours of ORB descriptors (256 bits) in Hamming space: locality-sensitive hash tables.

Table t keys each indexed descriptor by its 16-bit word t; a query is compared (exact Hamming
distance) with every descriptor that shares at least one of its words, and the two nearest are
kept for Lowe's ratio test. ORB's bit tests were chosen to be uncorrelated, so consecutive words
serve as independent hashes. With 8 tables, a query meets ~70 candidates among 97,000 indexed
descriptors (125 eval images of 1,000 keypoints); the 500 queries of one image take ~0.55 ms in C
(``wit/imagehash/_hamming.c``, POPCNT where the CPU has it), against ~4.3 ms for OpenCV's FLANN LSH
with the same tables (which this replaced: same recall) and ~12 ms for the numpy fallback below
(same answers as the C; used without a C compiler). Measured in docs/BENCHMARKS.md (#19).
"""

from __future__ import annotations

import numpy as np

try:
    from wit.imagehash._hamming import knn2 as _knn2
except ImportError:  # no C compiler at install: the numpy path below
    _knn2 = None

DESC_BYTES = 32
KEY_BITS = 16


class HammingLSH:
    """The two nearest indexed descriptors of each query among its hash-table candidates."""

    def __init__(self, descriptors: np.ndarray, tables: int = 8):
        desc = np.ascontiguousarray(descriptors, np.uint8).reshape(-1, DESC_BYTES)
        if not 1 <= tables <= DESC_BYTES * 8 // KEY_BITS:
            raise ValueError(f"lsh: 1..{DESC_BYTES * 8 // KEY_BITS} tables of {KEY_BITS} bits, not {tables}")
        self.desc, self.n, self.tables = desc, len(desc), tables
        keys = self._keys(desc).T.ravel()  # table-major: (table, row)
        order = np.argsort(keys, kind="stable")
        self.ids = np.ascontiguousarray(order % max(self.n, 1), np.int32)
        counts = np.bincount(keys, minlength=tables << KEY_BITS)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def _keys(self, desc: np.ndarray) -> np.ndarray:
        """(rows, tables) bucket numbers: word t of each descriptor, offset into table t's key range."""
        return desc.view(np.uint16)[:, :self.tables].astype(np.int64) + (
            np.arange(self.tables, dtype=np.int64) << KEY_BITS)

    def knn2(self, queries: np.ndarray, use_c: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(distances (m, 2) int32, rows (m, 2) int64) of each query's two nearest candidates, nearest
        first, ties to the lower row; distance 257 and row -1 where there are fewer than two."""
        q = np.ascontiguousarray(queries, np.uint8).reshape(-1, DESC_BYTES)
        dist = np.full((len(q), 2), 257, np.int32)
        rows = np.full((len(q), 2), -1, np.int64)
        if not len(q) or not self.n:
            return dist, rows
        if _knn2 is not None and use_c:
            _knn2(self.desc, self.ids, self.offsets, q, self.tables, dist, rows)
            return dist, rows
        keys = self._keys(q)
        starts = self.offsets[keys].ravel()
        lens = self.offsets[keys + 1].ravel() - starts
        total = int(lens.sum())
        if not total:
            return dist, rows
        qrow = np.repeat(np.arange(len(q) * self.tables) // self.tables, lens)
        pos = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
        pair = np.unique(qrow * self.n + self.ids[pos])  # each (query, candidate) once
        qrow, cand = pair // self.n, pair % self.n
        d = np.bitwise_count(self.desc.view(np.uint64)[cand] ^ q.view(np.uint64)[qrow]).sum(1, dtype=np.int32)
        o = np.lexsort((cand, d, qrow))
        qrow, cand, d = qrow[o], cand[o], d[o]
        first = np.flatnonzero(np.r_[True, qrow[1:] != qrow[:-1]])
        dist[qrow[first], 0], rows[qrow[first], 0] = d[first], cand[first]
        second = first[first + 1 < len(qrow)] + 1
        second = second[qrow[second] == qrow[second - 1]]
        dist[qrow[second], 1], rows[qrow[second], 1] = d[second], cand[second]
        return dist, rows
