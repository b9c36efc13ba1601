"""An Aho-Corasick matcher over the whole query list, with MetaCLIP's matching semantics.

Entry ``e`` matches a text iff ``entry_key(e)`` (`` e `` with a space each side) occurs in
``spaced(text)`` (wit/text/normalize.py); case-sensitive; every matched entry counts, overlapping
ones included.

How it is fast: ``match_batch`` spaces a whole batch at once into one haystack whose texts are
separated by NUL. Entries without a space (most hits: unigrams) match exactly when they equal a
``" "``-delimited token of the spaced text, so they are found by splitting the haystack in Arrow
and looking up each distinct token once. Entries with a space go through one Aho-Corasick pass
over the UTF-8 haystack (ahocorasick_rs, or pyahocorasick). Hits become sorted, de-duplicated id
lists with numpy, with no per-caption Python loop.
"""

from __future__ import annotations

import itertools
import logging
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.text.normalize import PADDED_PUNCTUATION, SPACED_CONTROLS, entry_key, spaced

log = logging.getLogger(__name__)

BACKENDS = ("ahocorasick_rs", "pyahocorasick")

_SEP = "\x00"
_NO_ID = -1
_SEP_ID = -2


def _space_batch(joined: str) -> str:
    """``spaced`` applied to every NUL-separated text of ``joined`` at once (str.replace runs in C)."""
    for p in PADDED_PUNCTUATION:
        joined = joined.replace(p, f" {p} ")
    for c in SPACED_CONTROLS:
        joined = joined.replace(c, " ")
    return " " + joined.replace(_SEP, f" {_SEP} ") + " "


class Matcher:
    """Maps texts to the sorted ids of the entries they contain (``match``, ``match_batch``).

    Picklable: it pickles as its entry list and rebuilds its automaton on load (the Rust
    automaton has no pickle support), so build it once per worker, in ``setup()``.
    """

    def __init__(self, entries: Sequence[str], ids: Sequence[int] | None = None, backend: str = "ahocorasick_rs"):
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
            if not e or _SEP in e or any(c in e for c in SPACED_CONTROLS):
                never += 1
                continue
            first.setdefault(e, i)
        if never:
            log.warning("matcher: left out %d entries that can never match", never)
        if len(first) < len(self._entries) - never:
            log.warning("matcher: %d duplicate entries map to their smallest id", len(self._entries) - never - len(first))
        self.n_entries = len(first)
        self._span = max(first.values(), default=0) + 1
        self._token_ids = {e: i for e, i in first.items() if " " not in e}
        self._token_ids[_SEP] = _SEP_ID
        phrases = [(e, i) for e, i in first.items() if " " in e]
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

    def _token_hits(self, haystack: str) -> tuple[np.ndarray, np.ndarray]:
        tokens = pc.split_pattern(pa.array([haystack], pa.large_string()), " ").flatten()
        enc = tokens.dictionary_encode()
        get = self._token_ids.get
        lookup = np.fromiter((get(t, _NO_ID) for t in enc.dictionary.to_pylist()), np.int64, count=len(enc.dictionary))
        ids = lookup[enc.indices.to_numpy(zero_copy_only=False)]
        rows = np.cumsum(ids == _SEP_ID)
        hit = ids >= 0
        return rows[hit], ids[hit]

    def _phrase_hits(self, haystack: str) -> tuple[np.ndarray, np.ndarray]:
        empty = (np.empty(0, np.int64), np.empty(0, np.int64))
        if self._ac is None:
            return empty
        if self.backend == "ahocorasick_rs":
            data = haystack.encode("utf-8", "surrogatepass")
            hits = self._ac.find_matches_as_indexes(data, overlapping=True)
            if not hits:
                return empty
            flat = np.fromiter(itertools.chain.from_iterable(hits), np.int64, count=3 * len(hits))
            keys, pos = flat[0::3], flat[1::3]
            seps = np.flatnonzero(np.frombuffer(data, np.uint8) == 0)
        else:
            flat = np.fromiter(itertools.chain.from_iterable(self._ac.iter(haystack)), np.int64)
            if not len(flat):
                return empty
            pos, keys = flat[0::2], flat[1::2]  # end positions: inside the text like the start
            seps = np.flatnonzero(np.frombuffer(haystack.encode("utf-32-le"), np.uint32) == 0)
        return np.searchsorted(seps, pos), self._phrase_ids[keys]

    def _match_alone(self, text: str) -> list[int]:
        """The plain definition, for a text that holds NUL (it cannot be batched)."""
        s = spaced(text)
        found = {i for e, i in self._token_ids.items() if i >= 0 and entry_key(e) in s}
        found |= {int(i) for e, i in zip(self._phrase_entries(), self._phrase_ids) if entry_key(e) in s}
        return sorted(found)

    def _phrase_entries(self) -> list[str]:
        return [e for e in dict.fromkeys(e for e, _ in sorted(zip(self._entries, self._ids), key=lambda p: p[1]))
                if e and " " in e and _SEP not in e and not any(c in e for c in SPACED_CONTROLS)]
