"""WordNet synset names through NLTK: ``ss.name()`` up to the first '.', '_' -> ' '."""

from __future__ import annotations

import functools


def synset_query(name: str) -> str:
    """``"hot_dog.n.01"`` -> ``"hot dog"`` (CLIP/MetaCLIP: the name up to its first '.')."""
    return name.split(".", 1)[0].replace("_", " ")


@functools.lru_cache(maxsize=1)
def synset_names() -> tuple[tuple[str, int], ...]:
    """Distinct synset queries in WordNet order, each with how many synsets share it (cached)."""
    from nltk.corpus import wordnet as wn

    counts: dict[str, int] = {}
    for ss in wn.all_synsets():
        q = synset_query(ss.name())
        counts[q] = counts.get(q, 0) + 1
    return tuple(counts.items())
