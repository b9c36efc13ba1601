"""An Aho-Corasick matcher over the whole query list, with MetaCLIP's matching semantics.

Entry ``e`` matches a text iff ``entry_key(e)`` (`` e `` with a space each side) occurs in
``spaced(text)`` (wit/text/normalize.py); case-sensitive; every matched entry counts, overlapping
ones included.

How it is fast: ``match_batch`` spaces a whole batch at once, on its UTF-8 bytes, into one
haystack whose texts are separated by NUL. Every space of a spaced text is a token boundary, so
`` e `` occurs exactly where ``e.split(" ")`` equals a run of consecutive ``" "``-delimited tokens
that has a space on each side. The haystack is split at spaces with numpy; each word of up to 15
bytes is its own exact 128-bit key (its bytes in two little-endian words, plus its length), looked
up in a hash table of the entry words and checked against the stored key, so no Python string is
made for it (longer words, rare, go through a dict). Entries are found by walking a trie over word
ids, one level per word, for all positions at once with numpy (``backend="tokens"``, the
default). The other backends find entries with a space by one Aho-Corasick pass over the haystack
instead (ahocorasick_rs, or pyahocorasick).
Hits become sorted, de-duplicated id lists with numpy, with no per-caption Python loop.
"""

from __future__ import annotations

import itertools
import logging
import re
from typing import Sequence

import numpy as np
import pyarrow as pa

from wit.text.normalize import PADDED_PUNCTUATION, SPACED_CONTROLS, entry_key, spaced

log = logging.getLogger(__name__)

BACKENDS = ("tokens", "ahocorasick_rs", "pyahocorasick")

_SEP = "\x00"
_NO_ID = -1
_NEVER = re.compile("[" + re.escape(_SEP + "".join(SPACED_CONTROLS)) + "]")


_SPACING = [(p.encode(), f" {p} ".encode()) for p in PADDED_PUNCTUATION] + [(c.encode(), b" ") for c in SPACED_CONTROLS]


def _space_batch(joined: str) -> bytes:
    """``spaced`` applied to every NUL-separated text of ``joined`` at once, on its UTF-8 bytes.

    ``bytes.replace`` runs in C over one byte per ASCII character, where ``str.replace`` reads 2 or 4
    bytes per character once a batch holds one wide character; the replaced characters are ASCII,
    which no multi-byte UTF-8 sequence contains.
    """
    data = joined.encode("utf-8", "surrogatepass")
    for old, new in _SPACING:
        data = data.replace(old, new)
    return b" " + data.replace(b"\x00", b" \x00 ") + b" "


class _EdgeTable:
    """An open-addressing hash table from int64 keys (>= 0) to int64 values, probed for many keys at
    once with numpy (a few vectorised probes per lookup instead of a binary search's ~20)."""

    _MUL = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        bits = max(int(2 * len(keys)).bit_length(), 4)  # load factor <= 1/2
        self._shift, self._mask = np.uint64(64 - bits), (1 << bits) - 1
        # Key and value side by side: a probe reads one 16-byte slot (one cache miss, not two).
        self._slots = np.full((1 << bits, 2), -1, np.int64)
        self._keys, self._values = self._slots[:, 0], self._slots[:, 1]
        self._pairs = self._slots.view(np.complex128).reshape(-1)  # 16-byte items: a plain 1-D gather
        slot = self._slot(keys)
        todo = np.arange(len(keys))
        while len(todo):
            free = self._keys[slot[todo]] == -1
            cand, cand_slot = todo[free], slot[todo[free]]
            _, first = np.unique(cand_slot, return_index=True)  # one key per free slot this round
            placed = cand[first]
            self._keys[slot[placed]], self._values[slot[placed]] = keys[placed], values[placed]
            left = np.ones(len(keys), bool)
            left[placed] = False
            todo = todo[left[todo]]
            slot[todo] = (slot[todo] + 1) & self._mask

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._MUL) >> self._shift).astype(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, or -1 where a key is absent."""
        slot = self._slot(keys)
        first = self._pairs[slot].view(np.int64).reshape(-1, 2)
        stored = first[:, 0]
        hit = stored == keys
        out = np.where(hit, first[:, 1], _NO_ID)  # most keys settle at the first probe
        todo = np.flatnonzero(~hit & (stored != -1))
        keys, slot = keys[todo], (slot[todo] + 1) & self._mask
        while len(todo):
            stored = self._keys[slot]
            hit = stored == keys
            out[todo[hit]] = self._values[slot[hit]]
            more = ~hit & (stored != -1)
            todo, keys, slot = todo[more], keys[more], (slot[more] + 1) & self._mask
        return out


_MASK = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], np.uint64)
_SHORT = 15  # bytes: the longest word a (k1, k2) key holds exactly


def _word_keys(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``b" "``-delimited words of UTF-8 bytes ``data`` (as ``bytes.split(b" ")``): their starts,
    lengths, and exact keys ``k1`` (bytes 0-7) and ``k2`` (bytes 8-14, length in the top byte)."""
    cut = np.flatnonzero(data == 32)
    starts = np.concatenate(([0], cut + 1))
    lengths = np.concatenate((cut, [len(data)])) - starts
    padded = np.concatenate((data, np.zeros(24, np.uint8)))
    windows = np.ndarray((len(padded) - 7,), "<u8", padded.data, 0, (1,))  # an 8-byte load at every byte
    n = np.minimum(lengths, _SHORT)
    k1 = windows[starts] & _MASK[np.minimum(n, 8)]
    k2 = n.astype(np.uint64) << np.uint64(56)
    over = np.flatnonzero(n > 8)  # most words fit in k1
    k2[over] |= windows[starts[over] + 8] & _MASK[n[over] - 8]
    return starts, lengths, k1, k2


def _mix(k1: np.ndarray, k2: np.ndarray, seed: int) -> np.ndarray:
    """A non-negative int64 hash of (k1, k2) for the lookup table (keys are checked exactly after)."""
    h = k1 * np.uint64(0x9E3779B97F4A7C15 ^ seed) ^ (k2 * np.uint64(0xC2B2AE3D27D4EB4F))
    h ^= h >> np.uint64(29)
    return (h >> np.uint64(1)).astype(np.int64)


class Matcher:
    """Maps texts to the sorted ids of the entries they contain (``match``, ``match_batch``).

    Picklable: it pickles as its entry list and rebuilds its automaton on load (the Rust
    automaton has no pickle support), so build it once per worker, in ``setup()``.
    """

    def __init__(self, entries: Sequence[str], ids: Sequence[int] | None = None, backend: str = "tokens"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown matcher backend {backend!r}; choose one of {BACKENDS}")
        ids = list(range(len(entries))) if ids is None else [int(i) for i in ids]
        if len(ids) != len(entries):
            raise ValueError(f"{len(entries)} entries but {len(ids)} ids")
        if ids and min(ids) < 0:
            raise ValueError("entry ids must be >= 0")
        self.backend = backend
        self._entries = list(entries)
        self._ids = ids
        self._build()

    def _build(self) -> None:
        first: dict[str, int] = {}
        never = 0
        for e, i in sorted(zip(self._entries, self._ids), key=lambda p: p[1]):
            # An empty entry, or one holding NUL or a character that spacing removes, never matches.
            if not e or _NEVER.search(e):
                never += 1
                continue
            first.setdefault(e, i)
        if never:
            log.warning("matcher: left out %d entries that can never match", never)
        if len(first) < len(self._entries) - never:
            log.warning("matcher: %d duplicate entries map to their smallest id", len(self._entries) - never - len(first))
        self._first = first
        self.n_entries = len(first)
        self._span = max(first.values(), default=0) + 1
        on_trie = [(e, i) for e, i in first.items() if self.backend == "tokens" or " " not in e]
        phrases = [(e, i) for e, i in first.items() if self.backend != "tokens" and " " in e]
        self._build_trie(on_trie)
        self._phrase_ids = np.array([i for _, i in phrases], dtype=np.int64)
        self._ac = None
        if not phrases:
            return
        if self.backend == "ahocorasick_rs":
            import ahocorasick_rs

            self._ac = ahocorasick_rs.BytesAhoCorasick(
                [entry_key(e).encode("utf-8", "surrogatepass") for e, _ in phrases],
                matchkind=ahocorasick_rs.MatchKind.Standard,
            )
        else:
            import ahocorasick

            ac = ahocorasick.Automaton()
            for k, (e, _) in enumerate(phrases):
                ac.add_word(entry_key(e), k)
            ac.make_automaton()
            self._ac = ac

    def _build_trie(self, items: list[tuple[str, int]]) -> None:
        """A trie over word ids: node ``w`` (< len(vocab)) is the one-word prefix ``w``; deeper
        nodes follow; an edge ``node * width + word`` -> child lives in an ``_EdgeTable``."""
        split = [e.split(" ") for e, _ in items]
        vocab = {w: k for k, w in enumerate(dict.fromkeys(itertools.chain.from_iterable(split)))}
        self._sep_word, self._dead_word = len(vocab), len(vocab) + 1
        vocab[_SEP] = self._sep_word
        self._vocab = vocab
        self._build_word_table(list(vocab))
        width = self._width = len(vocab) + 1
        term = [_NO_ID] * width
        edges: dict[int, int] = {}
        get = edges.get
        for words, (_, i) in zip(split, items):
            node = vocab[words[0]]
            for word in words[1:]:
                key = node * width + vocab[word]
                child = get(key)
                if child is None:
                    child = edges[key] = len(term)
                    term.append(_NO_ID)
                node = child
            term[node] = i
        self._term = np.array(term, np.int64)
        keys = np.fromiter(edges.keys(), np.int64, count=len(edges))
        children = np.fromiter(edges.values(), np.int64, count=len(edges))
        self._has_child = np.zeros(len(term), bool)
        self._has_child[keys // width] = True
        self._edges = _EdgeTable(keys, children)

    def _build_word_table(self, words: list[str]) -> None:
        """Exact keys of the words of up to 15 UTF-8 bytes in a hash table; longer ones in a dict."""
        data = np.frombuffer(" ".join(words).encode("utf-8", "surrogatepass"), np.uint8)
        _, lengths, k1, k2 = _word_keys(data)
        ids = np.arange(len(words), dtype=np.int64)
        short = lengths <= _SHORT
        self._long = {w: k for k, w in enumerate(words) if not short[k]}
        self._k1, self._k2 = k1, k2
        for seed in range(64):  # a different seed if two words' hashes ever collide
            h = _mix(k1[short], k2[short], seed)
            if len(np.unique(h)) == len(h):
                break
        else:
            raise RuntimeError("matcher: no collision-free word hash")
        self._seed = seed
        self._words = _EdgeTable(h, ids[short])

    def _word_ids(self, data: np.ndarray) -> np.ndarray:
        """The vocabulary id of every ``b" "``-delimited word of ``data`` (dead where none)."""
        starts, lengths, k1, k2 = _word_keys(data)
        v = self._words.get(_mix(k1, k2, self._seed))
        at = np.maximum(v, 0)
        v = np.where((v >= 0) & (self._k1[at] == k1) & (self._k2[at] == k2), v, self._dead_word)
        long = np.flatnonzero(lengths > _SHORT)
        if len(long):
            raw = data.tobytes()
            get, dead = self._long.get, self._dead_word
            v[long] = [get(raw[s:s + n].decode("utf-8", "surrogatepass"), dead)
                       for s, n in zip(starts[long].tolist(), lengths[long].tolist())]
        return v

    def __getstate__(self) -> dict:
        return {"backend": self.backend, "entries": self._entries, "ids": self._ids}

    def __setstate__(self, state: dict) -> None:
        self.backend, self._entries, self._ids = state["backend"], state["entries"], state["ids"]
        self._build()

    def match(self, text: str) -> list[int]:
        """Sorted ids of the entries ``text`` contains, each once."""
        return self.match_batch([text])[0].as_py()

    def match_batch(self, texts: Sequence[str]) -> pa.ListArray:
        """``match`` for every text at once, as a list<int32> array (one list per text)."""
        n = len(texts)
        joined = _SEP.join(texts)
        if joined.count(_SEP) != max(n - 1, 0):
            # A text holding NUL itself: one haystack per text.
            return pa.concat_arrays([self.match_batch([t]) for t in texts]) if n > 1 else \
                pa.array([self._match_alone(texts[0])], pa.list_(pa.int32()))
        haystack = _space_batch(joined)
        rows_t, ids_t = self._token_hits(haystack)
        rows_p, ids_p = self._phrase_hits(haystack)
        rows = np.concatenate([rows_t, rows_p])
        ids = np.concatenate([ids_t, ids_p])
        uniq = np.sort(rows * self._span + ids)  # sort-based: np.unique's hash path is slower here
        if len(uniq):
            uniq = uniq[np.concatenate(([True], uniq[1:] != uniq[:-1]))]
        rows, values = uniq // self._span, (uniq % self._span).astype(np.int32)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int32()))

    def _token_hits(self, haystack: bytes) -> tuple[np.ndarray, np.ndarray]:
        v = self._word_ids(np.frombuffer(haystack, np.uint8))
        # The first and last words have no space on their outer side: no entry word can be there.
        v[0] = v[-1] = self._dead_word
        rows = np.cumsum(v == self._sep_word)
        found = self._term[v]
        hit = np.flatnonzero(found >= 0)
        rows_out, ids_out = [rows[hit]], [found[hit]]
        start = np.flatnonzero(self._has_child[v])
        node = v[start]
        depth = 1
        while len(start):
            # A live prefix never reaches the last word (it is dead), so start + depth is in range.
            child = self._edges.get(node * self._width + v[start + depth])
            ok = child >= 0
            start, node = start[ok], child[ok]
            found = self._term[node]
            hit = found >= 0
            rows_out.append(rows[start[hit]])
            ids_out.append(found[hit])
            more = self._has_child[node]
            start, node = start[more], node[more]
            depth += 1
        return np.concatenate(rows_out), np.concatenate(ids_out)

    def _phrase_hits(self, haystack: bytes) -> tuple[np.ndarray, np.ndarray]:
        empty = (np.empty(0, np.int64), np.empty(0, np.int64))
        if self._ac is None:
            return empty
        if self.backend == "ahocorasick_rs":
            data = haystack
            hits = self._ac.find_matches_as_indexes(data, overlapping=True)
            if not hits:
                return empty
            flat = np.fromiter(itertools.chain.from_iterable(hits), np.int64, count=3 * len(hits))
            keys, pos = flat[0::3], flat[1::3]
            seps = np.flatnonzero(np.frombuffer(data, np.uint8) == 0)
        else:
            text = haystack.decode("utf-8", "surrogatepass")
            flat = np.fromiter(itertools.chain.from_iterable(self._ac.iter(text)), np.int64)
            if not len(flat):
                return empty
            pos, keys = flat[0::2], flat[1::2]  # end positions: inside the text like the start
            seps = np.flatnonzero(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32) == 0)
        return np.searchsorted(seps, pos), self._phrase_ids[keys]

    def _match_alone(self, text: str) -> list[int]:
        """The plain definition, for a text that holds NUL (it cannot be batched)."""
        s = spaced(text)
        return sorted({i for e, i in self._first.items() if entry_key(e) in s})
