"""The one text normalisation shared by the query builder and the matcher.

MetaCLIP's substring-matching semantics (docs/match.md): a text is wrapped in spaces, each of
``, . ; : ? ! ` `` gets a space on both sides, and tab/newline/carriage return become spaces.
An entry ``e`` matches iff ``" " + e + " "`` occurs in the spaced text (case-sensitive).

Tokenisation for the query builder is ``spaced(text).split()``: every token it yields contains
no space and none of the padded punctuation, so a counted word is always findable by the matcher
wherever it occurs as a token; a bigram ``"a b"`` is findable wherever its two tokens are
separated by exactly one space in the spaced text (the builder collapses runs of white space
before counting, so counted bigrams are the ones that appear that way).

``token_stream`` computes the same tokens, and which neighbours form findable bigrams, for a whole
Arrow array at once (the query builder's hot path); tests/unit/test_normalize.py asserts it equals
the per-string functions here, for white space of every kind.
"""

from __future__ import annotations

import string

import numpy as np
import pyarrow as pa

PADDED_PUNCTUATION = (",", ".", ";", ":", "?", "!", "`")
SPACED_CONTROLS = ("\t", "\n", "\r")

_TABLE = str.maketrans(
    {**{p: f" {p} " for p in PADDED_PUNCTUATION}, **{c: " " for c in SPACED_CONTROLS}}
)


def spaced(text: str) -> str:
    """Return ``text`` in MetaCLIP's spaced form (leading and trailing space included)."""
    # Same result as text.translate(_TABLE) (no replacement introduces another replaced
    # character), but chained str.replace is several times faster on long texts.
    for p in PADDED_PUNCTUATION:
        if p in text:
            text = text.replace(p, f" {p} ")
    for c in SPACED_CONTROLS:
        if c in text:
            text = text.replace(c, " ")
    return " " + text + " "


def entry_key(entry: str) -> str:
    """The string searched for when matching ``entry``: the entry with a space on each side."""
    return " " + entry + " "


def tokens(text: str) -> list[str]:
    """Whitespace tokens of the spaced text: the unit the query builder counts."""
    return spaced(text).split()


def collapse_whitespace(text: str) -> str:
    """Collapse runs of white space (every ``str.isspace`` character) to one space, trimmed."""
    return " ".join(text.split())


def is_single_punctuation(entry: str) -> bool:
    """True for a one-character entry in ASCII ``string.punctuation`` (MetaCLIP excludes only these).

    Other single symbols such as '–', '—' and '−' stay queries, as in MetaCLIP.
    """
    return len(entry) == 1 and entry in string.punctuation


_WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()]
_MULTIBYTE_WS = [c.encode() for c in _WHITESPACE if ord(c) >= 0x80]


def _byte_ranges(codes: list[int]) -> list[tuple[int, int]]:
    """Sorted byte values as inclusive ranges (comparisons are much cheaper than table lookups)."""
    ranges: list[tuple[int, int]] = []
    for c in sorted(set(codes)):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return ranges


_ASCII_WS_RANGES = _byte_ranges([ord(c) for c in _WHITESPACE if ord(c) < 0x80])
_PUNCT_RANGES = _byte_ranges([ord(p) for p in PADDED_PUNCTUATION])
_LEAD_RANGES = _byte_ranges([seq[0] for seq in _MULTIBYTE_WS])


def _in_ranges(data: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(len(data), bool)
    for lo, hi in ranges:
        out |= (data == lo) if lo == hi else ((data >= lo) & (data <= hi))
    return out


def token_stream(texts: pa.StringArray) -> tuple[pa.StringArray, np.ndarray]:
    """The tokens of all ``texts`` in order, and which neighbours form a countable bigram.

    Returns ``(tokens, joined)``: ``tokens`` is ``[t for text in texts for t in tokens(collapse_
    whitespace(text))]``, and ``joined[j]`` is True where tokens j and j+1 belong to the same text
    and stand one space apart in its spaced form (a bigram the matcher can find). Computed on the
    UTF-8 bytes: a padded punctuation character is a token of its own, other tokens are maximal
    runs of non-white-space bytes; two neighbours are one space apart exactly when one of (left is
    punctuation, white space between, right is punctuation) holds. One pass of the C extension
    (``_wikiclean.tokens``, ~3x the numpy passes: 19 vs 72 ms on the sample dump's 2.9 MB of
    cleaned text) where it is built, numpy's otherwise.
    """
    texts = _large(texts)
    n_texts = len(texts)
    data, offsets = _utf8_buffers(texts)
    size = len(data)
    compiled = _compiled_tokens()
    if compiled is not None and n_texts:  # one pass in C, same tokens and pairs (tests compare the two)
        chars, token_offsets, joined = compiled(data, offsets)
        n = len(token_offsets) // 8 - 1
        tokens = pa.LargeStringArray.from_buffers(n, pa.py_buffer(token_offsets), pa.py_buffer(chars))
        return tokens, np.frombuffer(bytearray(joined), np.uint8).view(bool)  # writable, as numpy's
    return _numpy_tokens(data, offsets, size)


def token_dictionary(texts: pa.StringArray) -> tuple[pa.LargeStringArray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``token_stream``'s tokens as a dictionary: ``(words, codes, joined, hashes)``.

    ``words`` are the distinct tokens in order of first sight, ``codes`` (int32) give each token's
    index into ``words`` (so ``words.take(codes)`` is ``token_stream``'s tokens), ``joined`` is
    ``token_stream``'s, and ``hashes`` are ``vocab.string_hashes(words)``. The C extension does it
    in the tokenising pass (a hash table on the tokens' bytes); without it, ``token_stream``,
    Arrow's ``dictionary_encode`` and ``hashes`` None (the caller hashes).
    """
    texts = _large(texts)
    data, offsets = _utf8_buffers(texts)
    compiled = _compiled_tokens()
    if compiled is None or not len(texts) or len(data) >= (1 << 31) - 1:  # int32 codes (one token a byte at most)
        import pyarrow.compute as pc

        tokens, joined = token_stream(texts)
        encoded = pc.dictionary_encode(tokens)
        return (encoded.dictionary.cast(pa.large_string()), encoded.indices.to_numpy().astype(np.int32),
                joined, None)
    chars, word_offsets, joined, codes, hashes = compiled(data, offsets, True)
    n = len(word_offsets) // 8 - 1
    words = pa.LargeStringArray.from_buffers(n, pa.py_buffer(word_offsets), pa.py_buffer(chars))
    return (words, np.frombuffer(codes, np.int32), np.frombuffer(bytearray(joined), np.uint8).view(bool),
            np.frombuffer(hashes, np.uint64))


def _large(texts) -> pa.LargeStringArray:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    return texts.cast(pa.large_string())


def _utf8_buffers(texts: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """(the UTF-8 bytes of all texts, their n+1 int64 boundaries from 0)."""
    n_texts = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], np.int64)[texts.offset:texts.offset + n_texts + 1]
    base = int(offsets[0]) if n_texts else 0
    offsets = offsets - base
    size = int(offsets[-1]) if n_texts else 0
    raw = texts.buffers()[2]
    data = np.frombuffer(raw, np.uint8)[base:base + size] if raw is not None else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64)


def _compiled_tokens():
    """``_wikiclean.tokens`` where the C extension is built (``make setup``), else None."""
    try:
        from wit.queries._wikiclean import tokens
    except ImportError:
        return None
    return tokens


def _numpy_tokens(data: np.ndarray, offsets: np.ndarray, size: int) -> tuple[pa.LargeStringArray, np.ndarray]:
    """``token_stream`` on the UTF-8 bytes ``data`` of texts bounded by ``offsets``, with numpy (the
    reference, and the path without the C extension)."""
    ws = _in_ranges(data, _ASCII_WS_RANGES)
    leads = np.flatnonzero(_in_ranges(data, _LEAD_RANGES))
    if len(leads):
        padded = np.concatenate([data, np.zeros(4, np.uint8)])
        for seq in _MULTIBYTE_WS:
            hit = leads[np.logical_and.reduce([padded[leads + k] == byte for k, byte in enumerate(seq)])]
            for k in range(len(seq)):
                ws[hit + k] = True
    punct = _in_ranges(data, _PUNCT_RANGES)
    word = ~(ws | punct)
    starts_of_texts = offsets[:-1][offsets[:-1] < size]
    prev_word = np.empty_like(word)
    prev_word[0:1] = False
    prev_word[1:] = word[:-1]
    prev_word[starts_of_texts] = False
    next_word = np.empty_like(word)
    next_word[-1:] = False
    next_word[:-1] = word[1:]
    ends_of_texts = offsets[1:][offsets[1:] > 0] - 1
    next_word[ends_of_texts] = False

    starts = np.flatnonzero(punct | (word & ~prev_word))
    ends = np.flatnonzero(punct | (word & ~next_word)) + 1
    is_punct = punct[starts]
    text_of = np.searchsorted(offsets, starts, side="right") - 1
    space_between = ends[:-1] < starts[1:]
    joined = (text_of[:-1] == text_of[1:]) & (
        is_punct[:-1].astype(np.int8) + space_between + is_punct[1:] == 1)

    # Drop the white-space bytes: the tokens then lie back to back, so start offsets suffice.
    gaps = starts - np.concatenate([[0], ends[:-1]])
    token_offsets = np.concatenate([starts - np.cumsum(gaps), [int(np.count_nonzero(~ws))]])
    tokens = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(token_offsets.astype(np.int64)),
                                              pa.py_buffer(data[~ws]))
    return tokens, joined
