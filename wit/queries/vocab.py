"""A counting task's vocabulary: distinct words with dense integer ids, looked up a batch at a time.

The counting stage gives every distinct word of a task an id (in order of first sight) and counts
ids. Looking a batch's distinct words up one by one in a Python dict costs ~0.25 us a word
(making the strings and hashing them), a sizeable share of counting. ``Vocabulary`` does it with
numpy and Arrow kernels on the batch's Arrow strings:

- a 64-bit hash of every word (a polynomial over its UTF-8 bytes, computed with ``reduceat``);
- a sorted array of the hashes of known words, searched with ``np.searchsorted``;
- a check that each hit is the same word (Arrow compares the strings), so the ids are exact:
  a word whose hash is already taken by another word is kept in a small dict instead.

Words are stored once, in id order, in growable numpy buffers seen by Arrow without a copy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BASE = np.uint64(0x100000001B3)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_powers = np.ones(1, np.uint64)


def _powers_upto(n: int) -> np.ndarray:
    """B**0 .. B**(n-1) modulo 2**64 (cached up to 64 Ki; a longer word gets its own table)."""
    global _powers
    if len(_powers) < n:
        p = np.full(max(n, 2 * len(_powers)), _BASE, np.uint64)
        p[0] = 1
        p = np.multiply.accumulate(p)  # wraps modulo 2**64, as intended
        if len(p) > 1 << 16:
            return p
        _powers = p
    return _powers


def _large_string_buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets relative to the first string, the bytes of all strings) of a large_string array."""
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], np.int64)[strings.offset:strings.offset + n + 1]
    raw = strings.buffers()[2]
    data = np.frombuffer(raw, np.uint8) if raw is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0]:offsets[-1]]


def string_hashes(strings: pa.Array) -> np.ndarray:
    """A 64-bit hash per string (uint64): sum of byte_i * B**i modulo 2**64, mixed with the length."""
    strings = strings.cast(pa.large_string())
    n = len(strings)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets, data = _large_string_buffers(strings)
    lengths = np.diff(offsets)
    h = np.zeros(n, np.uint64)
    if len(data):
        starts = offsets[:-1]
        pos = np.arange(len(data)) - np.repeat(starts, lengths)
        terms = data.astype(np.uint64) * _powers_upto(int(lengths.max()))[pos]
        nonempty = lengths > 0
        h[nonempty] = np.add.reduceat(terms, starts[nonempty])
    h ^= lengths.astype(np.uint64) * _MIX1
    h ^= h >> np.uint64(31)
    h *= _MIX2
    return h ^ (h >> np.uint64(29))


class _Strings:
    """An append-only string column in numpy buffers that double when full (Arrow sees them as is)."""

    def __init__(self) -> None:
        self.n = 0
        self.offsets = np.zeros(1024, np.int64)
        self.data = np.zeros(1 << 16, np.uint8)

    def append(self, strings: pa.Array) -> None:
        offsets, data = _large_string_buffers(strings)
        m, size, end = len(strings), int(self.offsets[self.n]), int(self.offsets[self.n]) + len(data)
        if self.n + m + 1 > len(self.offsets):
            self.offsets = np.resize(self.offsets, max(2 * len(self.offsets), self.n + m + 1))
        if end > len(self.data):
            self.data = np.resize(self.data, max(2 * len(self.data), end))
        self.offsets[self.n + 1:self.n + m + 1] = offsets[1:] + size
        self.data[size:end] = data
        self.n += m

    def array(self) -> pa.LargeStringArray:
        size = int(self.offsets[self.n])
        return pa.LargeStringArray.from_buffers(self.n, pa.py_buffer(self.offsets[:self.n + 1]),
                                                pa.py_buffer(self.data[:size]))


class Vocabulary:
    """Distinct words with dense ids 0..len-1 in order of first sight; ``ids`` adds new words."""

    def __init__(self, hash_fn: Callable[[pa.Array], np.ndarray] = string_hashes) -> None:
        self.hash_fn = hash_fn  # tests pass a weak hash to exercise collisions
        self.strings = _Strings()
        self.keys = np.zeros(0, np.uint64)  # sorted hashes of the words in the table
        self.key_ids = np.zeros(0, np.int64)
        self.others: dict[str, int] = {}  # words whose hash belongs to another word
        self._hashes: list[np.ndarray] = []  # every word's hash, in id order (spill buckets use them)

    def __len__(self) -> int:
        return self.strings.n

    def words(self) -> pa.LargeStringArray:
        """All words, in id order."""
        return self.strings.array()

    def hashes(self) -> np.ndarray:
        """Every word's ``hash_fn`` value (uint64), in id order."""
        return np.concatenate(self._hashes) if self._hashes else np.zeros(0, np.uint64)

    def ids(self, words: pa.Array, hashes: np.ndarray | None = None) -> np.ndarray:
        """The ids of a batch's *distinct* ``words`` (Arrow strings); words not seen before get new ids.

        ``hashes``: ``string_hashes(words)`` when the caller has them (the tokeniser computes them
        in C); used only where ``hash_fn`` is ``string_hashes``."""
        words = words.cast(pa.large_string())
        if hashes is None or self.hash_fn is not string_hashes:
            hashes = self.hash_fn(words)
        h = np.asarray(hashes).astype(np.uint64)  # the table is uint64
        order = np.argsort(h)  # sorted needles make the binary searches cache-friendly
        hs = h[order]
        out = np.full(len(words), -1, np.int64)
        taken = np.zeros(len(words), bool)  # the hash is in the table (this word's or another's)
        if len(self.keys):
            pos = np.empty(len(words), np.int64)
            pos[order] = np.minimum(np.searchsorted(self.keys, hs), len(self.keys) - 1)
            taken = self.keys[pos] == h
            hit = np.flatnonzero(taken)
            cand = self.key_ids[pos[hit]]
            same = pc.equal(words.take(pa.array(hit)), self.words().take(pa.array(cand)))
            same = same.to_numpy(zero_copy_only=False).astype(bool)
            out[hit[same]] = cand[same]
        if not (out < 0).any():
            return out
        # A word not found whose hash is taken, or shared with another word of the batch (all
        # but one of them), is the dict's business: the table holds one word per hash.
        shared = np.zeros(len(words), bool)
        shared[order[1:]] = hs[1:] == hs[:-1]
        odd = (out < 0) & (taken | shared)
        odd_words = {int(i): words[int(i)].as_py() for i in np.flatnonzero(odd)}  # rare
        for i, w in odd_words.items():
            out[i] = self.others.get(w, -1)
        new = np.flatnonzero(out < 0)  # in batch order
        first = len(self)
        out[new] = np.arange(first, first + len(new), dtype=np.int64)
        self.strings.append(words.take(pa.array(new)))
        self._hashes.append(h[new])
        for i, w in odd_words.items():
            if out[i] >= first:
                self.others[w] = int(out[i])
        regular = order[(out[order] >= first) & ~odd[order]]  # new table words, by hash
        at = np.searchsorted(self.keys, h[regular])
        self.keys = np.insert(self.keys, at, h[regular])
        self.key_ids = np.insert(self.key_ids, at, out[regular])
        return out
