"""The one text normalisation shared by the query builder and the matcher.

MetaCLIP's substring-matching semantics (DESIGN.md): a text is wrapped in spaces, each of
``, . ; : ? ! ` `` gets a space on both sides, and tab/newline/carriage return become spaces.
An entry ``e`` matches iff ``" " + e + " "`` occurs in the spaced text (case-sensitive).

Tokenisation for the query builder is ``spaced(text).split()``: every token it yields contains
no space and none of the padded punctuation, so a counted word is always findable by the matcher
wherever it occurs as a token; a bigram ``"a b"`` is findable wherever its two tokens are
separated by exactly one space in the spaced text (the builder collapses runs of white space
before counting, so counted bigrams are the ones that appear that way).
"""

from __future__ import annotations

import re

PADDED_PUNCTUATION = (",", ".", ";", ":", "?", "!", "`")
SPACED_CONTROLS = ("\t", "\n", "\r")

_TABLE = str.maketrans(
    {**{p: f" {p} " for p in PADDED_PUNCTUATION}, **{c: " " for c in SPACED_CONTROLS}}
)
_WS = re.compile(r"\s+")


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
    """Collapse runs of white space to one space (used on cleaned wikitext before counting)."""
    return _WS.sub(" ", text).strip()


def is_single_punctuation(entry: str) -> bool:
    """True for a one-character entry that is not a letter or digit (excluded from queries)."""
    return len(entry) == 1 and not entry.isalnum()
