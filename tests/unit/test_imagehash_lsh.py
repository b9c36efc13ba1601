"""The keypoint index's nearest-neighbour search (wit/imagehash/lsh.py and its C twin _hamming.c)."""

from __future__ import annotations

import numpy as np
import pytest

from wit.imagehash import lsh
from wit.imagehash.lsh import HammingLSH


def _bits_flipped(desc: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``desc`` with ``n`` random bits of each row flipped."""
    out = desc.copy()
    for row in out:
        for b in rng.choice(256, n, replace=False):
            row[b // 8] ^= 1 << (b % 8)
    return out


def _brute_knn2(index: HammingLSH, queries: np.ndarray):
    """What knn2 must return: the two nearest distinct rows among those sharing a 16-bit word with the
    query in one of the tables (ties to the lower row), by exhaustive comparison."""
    words_i = index.desc.view(np.uint16)[:, :index.tables]
    dist = np.full((len(queries), 2), 257, np.int32)
    rows = np.full((len(queries), 2), -1, np.int64)
    for k, q in enumerate(queries):
        cand = np.flatnonzero((words_i == q.view(np.uint16)[:index.tables]).any(axis=1))
        d = np.unpackbits(index.desc[cand] ^ q, axis=1).sum(1)
        order = np.lexsort((cand, d))[:2]
        dist[k, :len(order)], rows[k, :len(order)] = d[order], cand[order]
    return dist, rows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    desc = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    desc[100:140] = desc[7]  # duplicates: ties broken by the lower row
    near = _bits_flipped(desc[:300], 20, rng)  # a copy's descriptors: a few bits off
    far = rng.integers(0, 256, (200, 32), dtype=np.uint8)  # unrelated: most share no word
    return desc, np.concatenate([near, far, desc[7:8]])


@pytest.mark.parametrize("use_c", [False, True])
def test_knn2_is_the_exhaustive_answer(data, use_c):
    if use_c and lsh._knn2 is None:
        pytest.skip("wit.imagehash._hamming is not built (no C compiler at install)")
    desc, queries = data
    index = HammingLSH(desc, tables=8)
    dist, rows = index.knn2(queries, use_c=use_c)
    want_d, want_r = _brute_knn2(index, queries)
    assert (dist == want_d).all() and (rows == want_r).all()
    # near copies find their own row (unless all 8 of their words changed: ~8% at 20 bits flipped; rows
    # 100-139 repeat row 7, which wins the tie); the exact duplicate of row 7 is row 7, then row 100
    own = np.r_[0:100, 140:300]
    assert (rows[own, 0] == own).mean() > 0.85
    assert rows[-1].tolist() == [7, 100] and dist[-1].tolist() == [0, 0]
    assert (rows[300:500, 0] == -1).mean() > 0.5 and (dist[rows == -1] == 257).all()


def test_c_and_numpy_agree_on_real_orb_descriptors():
    if lsh._knn2 is None:
        pytest.skip("wit.imagehash._hamming is not built (no C compiler at install)")
    from tests.unit.test_dedupe_keypoints import EVALS, OTHERS
    from wit.imagehash.keypoints import orb_features

    index = HammingLSH(np.concatenate([orb_features(im, 1000).descriptors for im in EVALS]))
    for im in OTHERS[:3] + EVALS[:2]:
        q = orb_features(im.rotate(7)).descriptors
        a, b = index.knn2(q), index.knn2(q, use_c=False)
        assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_empty_index_and_queries():
    empty = HammingLSH(np.zeros((0, 32), np.uint8))
    d, r = empty.knn2(np.zeros((3, 32), np.uint8))
    assert (r == -1).all() and (d == 257).all()
    d, r = HammingLSH(np.ones((5, 32), np.uint8)).knn2(np.zeros((0, 32), np.uint8))
    assert d.shape == r.shape == (0, 2)


def test_bad_settings_and_buffers_are_refused():
    with pytest.raises(ValueError, match="tables"):
        HammingLSH(np.zeros((4, 32), np.uint8), tables=17)
    if lsh._knn2 is None:
        pytest.skip("wit.imagehash._hamming is not built")
    index = HammingLSH(np.zeros((4, 32), np.uint8), tables=2)
    q = np.zeros((3, 32), np.uint8)
    dist, rows = np.zeros((3, 2), np.int32), np.zeros((3, 2), np.int64)
    with pytest.raises(ValueError, match="buffer sizes"):  # output for 2 queries, 3 given
        lsh._knn2(index.desc, index.ids, index.offsets, q, 2, dist[:2], rows[:2])
    with pytest.raises(ValueError, match="buffer sizes"):  # offsets of another table count
        lsh._knn2(index.desc, index.ids, index.offsets, q, 3, dist, rows)
    bad = index.offsets.copy()
    bad[-1] += 1
    with pytest.raises(ValueError, match="offsets"):
        lsh._knn2(index.desc, index.ids, bad, q, 2, dist, rows)
    with pytest.raises(TypeError):  # outputs must be writable
        lsh._knn2(index.desc, index.ids, index.offsets, q, 2, bytes(24), rows)
