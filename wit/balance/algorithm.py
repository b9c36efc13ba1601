"""MetaCLIP Algorithm 1 and the hard cap, as pure functions of (uid, query_ids, counts, t, seed).

Coins come from ``wit.records.unit_hash(uid, query_id, seed)``: a pair's fate depends only on its
own key, so any sharding of the pool gives the same result.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.records import unit_hash


def count_lookup(counts: pa.Table) -> np.ndarray:
    """A dense array: query_id -> count (0 for entries that never matched)."""
    ids = counts.column("query_id").to_numpy()
    out = np.zeros(int(ids.max()) + 1 if len(ids) else 1, np.int64)
    out[ids] = counts.column("count").to_numpy()
    return out


def _count_of(lookup: np.ndarray, qids: np.ndarray) -> np.ndarray:
    safe = np.clip(qids, 0, len(lookup) - 1)
    return np.where(qids < len(lookup), lookup[safe], 0)


def metaclip_keep(uids: list[str], query_ids: pa.ListArray, lookup: np.ndarray, cap: float, seed: int) -> np.ndarray:
    """Algorithm 1: keep a pair iff some matched entry's coin lands under that entry's p_e."""
    flat = pc.list_flatten(query_ids).to_numpy(zero_copy_only=False).astype(np.int64)
    parents = pc.list_parent_indices(query_ids).to_numpy(zero_copy_only=False)
    counts = _count_of(lookup, flat)
    keep = np.zeros(len(uids), bool)
    # A pair with any tail entry (p_e = 1) is kept whatever its other coins say.
    keep[parents[counts <= cap]] = True
    for i, q, c in zip(parents.tolist(), flat.tolist(), counts.tolist()):
        if not keep[i] and unit_hash(uids[i], q, seed) < cap / c:
            keep[i] = True
    return keep


def attribute(query_ids: pa.ListArray, lookup: np.ndarray) -> np.ndarray:
    """Each pair's rarest matched entry (ties: the smallest query_id); -1 for a pair with none."""
    flat = pc.list_flatten(query_ids).to_numpy(zero_copy_only=False).astype(np.int64)
    parents = pc.list_parent_indices(query_ids).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.full(len(query_ids), -1, np.int64)
    if not len(flat):
        return out
    order = np.lexsort((flat, _count_of(lookup, flat), parents))
    p = parents[order]
    first = np.concatenate(([True], p[1:] != p[:-1]))
    out[p[first]] = flat[order][first]
    return out


def hardcap_coins(uids: list[str], attributed: np.ndarray, seed: int) -> np.ndarray:
    return np.array([unit_hash(u, int(a), seed) for u, a in zip(uids, attributed.tolist())], np.float64)
