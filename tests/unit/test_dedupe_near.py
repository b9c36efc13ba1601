"""The within-dataset near-duplicate pass by multi-index hashing equals the brute-force scan exactly."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from wit.imagehash import mih
from wit.dedupe.describe import DESCRIPTORS, descriptor_url
from wit.dedupe.near import _earlier_phash_mih, earlier_duplicates, near_duplicates
from wit.imagehash.mih import flip_random_bits
from wit.io import folders


def _clustered(rng, n, n_centres=None):
    """Half uniform hashes, half 0-10 bits around a few centres; exact copies; chains a~b~c where
    c is near b but not a (b sits between them)."""
    n_centres = n_centres or max(1, n // 40)
    h = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    near = rng.random(n) < 0.5
    centres = rng.integers(0, 2**64, n_centres, dtype=np.uint64, endpoint=False)
    h[near] = flip_random_bits(rng, centres[rng.integers(0, n_centres, int(near.sum()))], 10)
    copies = rng.integers(0, n, n // 20)
    h[rng.integers(0, n, len(copies))] = h[copies]
    for s in range(0, min(n - 3, 60), 3):  # chain: 3 bits per step, 6 from end to end
        a = h[s]
        b = a ^ np.uint64(0b111)
        h[s + 1], h[s + 2] = b, b ^ np.uint64(0b111000)
    return h


def _pixels(rng, n):
    """Pixel hashes with some exact repeats (those override the pHash match)."""
    px = np.array([f"p{i}" for i in range(n)], dtype=object)
    rep = rng.integers(0, n, n // 15)
    px[rng.integers(0, n, len(rep))] = px[rep]
    return px.tolist()


@pytest.mark.parametrize("threshold", [-1, 0, 1, 2, 3, 4, 6, 8, 10, 13, 16, 24, 64, 100])
def test_mih_equals_brute_force_on_clustered_hashes(threshold):
    rng = np.random.default_rng(threshold + 5)
    n = 300 if threshold >= 24 else 3000  # wide radii enumerate whole substring spaces
    h = _clustered(rng, n)
    brute = mih.earlier_nearest_brute(h, min(threshold, 64))
    got = _earlier_phash_mih(h, min(threshold, 64))
    assert np.array_equal(brute, got)
    if 0 <= threshold <= 64:
        assert (brute >= 0).sum() > 0
        assert (brute < np.arange(n)).all()  # only earlier rows, or -1
    if threshold == 3:  # a chain: b is 3 bits off a, c 3 off b and 6 off a -> c points at b
        assert brute[1] == 0 and brute[2] == 1
    px = _pixels(rng, n)
    want = earlier_duplicates(px, h, threshold, method="brute")
    assert np.array_equal(want, earlier_duplicates(px, h, threshold, method="mih"))
    assert np.array_equal(want, earlier_duplicates(px, h, threshold, method="auto"))


@pytest.mark.parametrize("m", [3, 4, 5, 6, 8])
def test_earlier_nearest_for_every_substring_count(m):
    rng = np.random.default_rng(m)
    h = _clustered(rng, 4000)
    for thr in (0, 4, 9):
        best, dist = mih.MultiIndex(h, m).earlier_nearest(thr, max_candidates=1 << 12)  # many blocks
        assert np.array_equal(best, mih.earlier_nearest_brute(h, thr))
        hit = best >= 0
        assert np.array_equal(dist[hit], np.bitwise_count(h[hit] ^ h[best[hit]]))


def test_ties_and_precedence():
    """Least distance first, then the lowest earlier row; an identical pixel hash beats any pHash."""
    h = np.array([0b1, 0b10, 0b0, 0b11, 1 << 40, 0b1], dtype=np.uint64)
    px = ["a", "b", "c", "d", "b", "f"]
    for method in ("brute", "mih"):
        got = earlier_duplicates(px, h, 2, method=method).tolist()
        # row 2 (0b0) is 1 bit from rows 0 and 1: row 0; row 3 (0b11) 1 bit from 0 and 1: row 0;
        # row 4 shares row 1's pixels; row 5 equals row 0 (distance 0)
        assert got == [-1, 0, 0, 0, 1, 0], method


def test_near_duplicates_table_and_cache(tmp_path):
    rng = np.random.default_rng(11)
    n = 5000
    h = _clustered(rng, n)
    uids = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(n)]
    px = _pixels(rng, n)
    out = str(tmp_path / "dd")
    err = np.where(rng.random(n) < 0.02, "decode_failed", "")
    order = rng.permutation(n)  # parts are not in uid order
    for k, part in enumerate(np.array_split(order, 3)):
        folders.write_parquet(descriptor_url(out, k), pa.table(
            {"uid": [uids[i] for i in part], "pixel_xxh3": [px[i] for i in part], "phash": pa.array(h[part]),
             "eval_match": [""] * len(part), "eval_match_by": [""] * len(part), "error": err[part].tolist()},
            schema=DESCRIPTORS))
    tables = {}
    for method in ("brute", "mih"):
        (tmp_path / "dd" / "_near_duplicates.parquet").unlink(missing_ok=True)
        tables[method] = near_duplicates(out, 4, method=method).to_pylist()
    assert tables["brute"] == tables["mih"] and len(tables["brute"]) > 100
    # against a direct per-row definition on a sample: sorted by uid, errors out
    ok = sorted((u, p, int(x)) for u, p, x, e in zip(uids, px, h, err) if not e)
    rows = {u: i for i, (u, _, _) in enumerate(ok)}
    got = {r["uid"]: r["dup_of"] for r in tables["mih"]}
    for i in rng.integers(0, len(ok), 200).tolist():
        u, p, x = ok[i]
        same = [j for j in range(i) if ok[j][1] == p]
        near = sorted((bin(x ^ ok[j][2]).count("1"), j) for j in range(i))
        want = same[0] if same else (near[0][1] if near and near[0][0] <= 4 else None)
        assert (ok[rows[got[u]]][0] if u in got else None) == (ok[want][0] if want is not None else None)
    assert near_duplicates(out, 99).to_pylist() == tables["mih"]  # cached: the threshold is not re-read
