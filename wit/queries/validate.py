"""The one check every loaded query list passes: unique ``query`` strings and unique ``query_id``s.

MetaCLIP's matcher would report both ids of a repeated string and a repeated id would merge two
entries' counts, so such a list is refused rather than silently reduced.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

SHOWN = 10


class QueryListError(ValueError):
    """A query list with repeated strings or ids."""


def check_unique(queries: Sequence[str], ids: Sequence[int], source: str) -> None:
    """Raise ``QueryListError`` naming the repeated strings and ids (the first few of each)."""
    problems = []
    for what, values in (("query", queries), ("query_id", ids)):
        repeated = [v for v, n in Counter(values).items() if n > 1]
        if repeated:
            shown = ", ".join(repr(v) for v in repeated[:SHOWN]) + (" ..." if len(repeated) > SHOWN else "")
            problems.append(f"{len(repeated)} duplicate {what} value(s): {shown}")
    if problems:
        raise QueryListError(f"{source}: invalid query list: " + "; ".join(problems))
