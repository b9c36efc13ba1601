"""Exact Hamming-distance search over 64-bit hashes: multi-index hashing (MIH) and the tiled scans.

Every pHash search in wit goes through this module: the eval index (wit/dedupe/index.py), the
in-set near-duplicate pre-pass (wit/dedupe/near.py) and the overlap detector's training index
(wit/overlap/detector.py). The scans (``brute_nearest``, ``earlier_nearest_brute``) are the
reference the MIH results are tested against, and what ``choose_m`` picks when a scan is cheaper.

The 64 bits are split into ``m`` disjoint substrings. If two hashes differ in at most ``R`` bits,
some substring differs in at most ``R // m`` bits (pigeonhole), so per substring we enumerate the
query's neighbours within that radius, read their rows from a CSR table (offsets over every
substring value + uint32 row ids grouped by value), and verify each candidate with the full distance.
Nothing is approximated: the result equals a brute-force scan, ties included.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

# Per-operation costs in brute-force cells (one XOR + popcount + compare of a scan, ~2.5-3 ns), fitted
# on uniform hashes at 100k and 2.9M rows, m = 3..8: one bucket look-up (~25-45 ns: offset reads,
# repeats) and one candidate (~5-8 ns: contiguous hash read, XOR, popcount, compare).
KEY_COST = 12.0
CANDIDATE_COST = 2.5
# Substring widths allowed: the offsets table (2^width + 1 uint32) stays under ~4 x the row-id table.
MAX_WIDTH = 22
M_CHOICES = (3, 4, 5, 6, 8)
MIN_ROWS = 1024  # below this a scan is a few microseconds and numpy's per-call overhead dominates MIH


def split_bits(m: int) -> tuple[tuple[int, int], ...]:
    """(shift, width) of the ``m`` disjoint substrings of 64 bits, widths differing by at most one."""
    base, extra = divmod(64, m)
    out, shift = [], 0
    for j in range(m):
        w = base + (1 if j < extra else 0)
        out.append((shift, w))
        shift += w
    return tuple(out)


def neighbours_count(width: int, radius: int) -> int:
    """Values of a ``width``-bit substring within ``radius`` bits of a given one."""
    return sum(math.comb(width, i) for i in range(min(radius, width) + 1))


@lru_cache(maxsize=64)
def flip_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set (XOR with a value = its neighbours)."""
    masks = [0]
    for k in range(1, min(radius, width) + 1):
        masks += [sum(1 << b for b in bits) for bits in itertools.combinations(range(width), k)]
    out = np.array(masks, dtype=np.int64)
    out.flags.writeable = False
    return out


def mih_cost(n_rows: int, m: int, radius: int) -> float:
    """Expected per-query cost of MIH in brute-force cells, for hashes spread evenly over substrings."""
    r = radius // m
    cost = 0.0
    for _, w in split_bits(m):
        k = neighbours_count(w, r)
        cost += k * KEY_COST + k * n_rows / (1 << w) * CANDIDATE_COST
    return cost


def choose_m(n_rows: int, radius: int) -> int | None:
    """The substring count of least expected cost (``mih_cost``), or None for a brute-force scan: when
    ``n_rows`` < ``MIN_ROWS``, ``radius`` < 0, or no m costs less than the scan's ``n_rows`` cells.
    Widths are kept so the offsets (2^width uint32) never exceed ~4x the row ids."""
    if radius < 0 or n_rows < MIN_ROWS:
        return None
    best, best_cost = None, float(n_rows)
    for m in M_CHOICES:
        w = split_bits(m)[0][1]
        if w > MAX_WIDTH or (1 << w) > 4 * max(n_rows, 1 << 16):
            continue
        c = mih_cost(n_rows, m, radius)
        if c < best_cost:
            best, best_cost = m, c
    return best


class MultiIndex:
    """CSR tables, one per substring, over ``hashes`` (uint64); rows are positions in ``hashes``."""

    def __init__(self, hashes: np.ndarray, m: int = 4):
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.m = m
        self.parts = split_bits(m)
        self.offsets: list[np.ndarray] = []
        self.ids: list[np.ndarray] = []
        self.sorted_hashes: list[np.ndarray] = []
        for shift, width in self.parts:
            sub = self._substring(self.hashes, shift, width)
            counts = np.bincount(sub, minlength=1 << width)
            off = np.zeros((1 << width) + 1, dtype=np.uint32)
            np.cumsum(counts, out=off[1:])
            self.offsets.append(off)
            order = np.argsort(sub, kind="stable")
            self.ids.append(order.astype(np.uint32))
            # hashes in bucket order: candidates of a bucket are read contiguously, not gathered at random
            self.sorted_hashes.append(self.hashes[order])

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def nbytes(self) -> int:
        """Bytes of the tables (offsets, row ids, hashes in bucket order), the input hashes not counted."""
        return sum(a.nbytes for a in self.offsets + self.ids + self.sorted_hashes)

    @staticmethod
    def _substring(h: np.ndarray, shift: int, width: int) -> np.ndarray:
        return ((h >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)

    def nearest(self, queries: np.ndarray, thr: np.ndarray, max_candidates: int = 1 << 21,
                before: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per query: (row of least distance with distance <= ``thr[row]``, lowest row on ties, or -1;
        that distance as int16, 255 where none). ``thr`` is an int array over rows. With ``before``
        (int per query) only rows < ``before[query]`` count: a self-join over earlier rows."""
        q = np.asarray(queries, dtype=np.uint64).reshape(-1)
        n = len(q)
        best = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, 255, dtype=np.int16)
        radius = int(thr.max()) if len(thr) else -1
        if n == 0 or radius < 0 or len(self) == 0:
            return best, dist
        per_query = max(1.0, mih_cost(len(self), self.m, radius) / CANDIDATE_COST)
        block = int(max(1, min(n, max_candidates // per_query)))
        for a in range(0, n, block):
            lim = None if before is None else before[a:a + block]
            b, d = self._nearest_block(q[a:a + block], thr, radius, lim)
            best[a:a + block], dist[a:a + block] = b, d
        return best, dist

    def earlier_nearest(self, thr: int, max_candidates: int = 1 << 21) -> tuple[np.ndarray, np.ndarray]:
        """``nearest`` of every indexed row among the rows before it, within ``thr`` bits."""
        n = len(self)
        return self.nearest(self.hashes, np.full(n, thr, dtype=np.int16), max_candidates,
                            before=np.arange(n, dtype=np.int64))

    def _nearest_block(self, q: np.ndarray, thr: np.ndarray, radius: int,
                       before: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = len(q)
        r = radius // self.m
        # (distance << 32 | row) so one minimum picks the least distance, then the lowest row
        key = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        for (shift, width), off, ids, table in zip(self.parts, self.offsets, self.ids, self.sorted_hashes):
            masks = flip_masks(width, r)
            values = self._substring(q, shift, width)[:, None] ^ masks[None, :]
            start = off[values].astype(np.int64).ravel()
            count = off[values + 1].astype(np.int64).ravel() - start
            end = np.cumsum(count)
            total = int(end[-1])
            if total == 0:
                continue
            # positions start..start+count of every (query, neighbour) bucket, concatenated
            pos = np.arange(total, dtype=np.int64) + np.repeat(start - (end - count), count)
            d = np.bitwise_count(np.repeat(np.repeat(q, len(masks)), count) ^ table[pos])
            near = np.nonzero(d <= radius)[0]
            if not len(near):
                continue
            rows = ids[pos[near]].astype(np.int64)
            d = d[near]
            ok = d <= thr[rows]
            qi = np.searchsorted(end, near[ok], side="right") // len(masks)
            if before is not None:
                earlier = rows[ok] < before[qi]
                ok[ok] = earlier
                qi = qi[earlier]
            np.minimum.at(key, qi, (d[ok].astype(np.int64) << 32) | rows[ok])
        hit = key != np.iinfo(np.int64).max
        best = np.where(hit, key & 0xFFFFFFFF, -1)
        dist = np.where(hit, key >> 32, 255).astype(np.int16)
        return best, dist


def flip_random_bits(rng: np.random.Generator, hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """``hashes`` with 0..``max_bits`` random bits flipped per value (synthetic near-copies for tests
    and benchmarks; a bit drawn twice flips back, so some values move less)."""
    out = hashes.copy()
    k = rng.integers(0, max_bits + 1, len(hashes))
    for j in range(max_bits):
        bit = rng.integers(0, 64, len(hashes)).astype(np.uint64)
        out ^= np.where(k > j, np.uint64(1) << bit, np.uint64(0))
    return out


NO_MATCH = 255


def brute_nearest(q: np.ndarray, ref: np.ndarray, thr: np.ndarray, block: int = 256,
                  chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scan: per query the position in ``ref`` of least distance <= ``thr[position]`` (first on ties)
    or -1, and that distance (``NO_MATCH`` where none).

    XOR + popcount in tiles of ``block`` queries by ``chunk`` hashes; without ``chunk``, the whole of
    ``ref`` with the block cut to ~4M cells (~12 MB)."""
    q = np.asarray(q, dtype=np.uint64).reshape(-1)
    n = len(q)
    best = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, NO_MATCH, dtype=np.int16)
    if chunk is None:
        chunk = max(1, len(ref))
        block = max(1, min(block, (1 << 22) // chunk))
    for c in range(0, len(ref), chunk):
        tile, tile_thr = ref[c:c + chunk], thr[c:c + chunk]
        for a in range(0, n, block):
            d = np.bitwise_count(q[a:a + block, None] ^ tile[None, :]).astype(np.int16)
            d[d > tile_thr[None, :]] = NO_MATCH
            j = d.argmin(axis=1)
            dj = d[np.arange(len(j)), j]
            better = dj < dist[a:a + block]  # strict: an earlier tile wins ties
            best[a:a + block][better] = c + j[better]
            dist[a:a + block][better] = dj[better]
    return best, dist


def earlier_nearest_brute(ph: np.ndarray, threshold: int, cells: int = 1 << 24) -> np.ndarray:
    """Scan: per row the earlier row of least distance <= ``threshold`` (lowest on ties) or -1; each block of
    rows against every row before its end, ~``cells`` pairs at a time (``MultiIndex.earlier_nearest``'s reference)."""
    n = len(ph)
    ph = np.asarray(ph, dtype=np.uint64)
    dup_of = np.full(n, -1, dtype=np.int64)
    block = max(1, min(2048, cells // max(n, 1)))
    for a in range(0, n, block):
        b = min(a + block, n)
        d = np.bitwise_count(ph[a:b, None] ^ ph[None, :b]).astype(np.int16)
        d[np.triu_indices(b - a, k=a, m=b)] = 99  # only j < i counts
        j = d.argmin(axis=1)
        hit = d[np.arange(b - a), j] <= threshold
        dup_of[a:b][hit] = j[hit]
    return dup_of
