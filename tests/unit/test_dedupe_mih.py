"""Multi-index hashing gives exactly the brute-force eval lookups: same rows, distances and ties."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from wit.imagehash import mih
from wit.imagehash.descriptors import phash64
from wit.dedupe.index import EvalIndex
from wit.imagehash.mih import brute_nearest
from wit.imagehash.mih import flip_random_bits

VARIANTS = ["image"] + ["crop"] * 19 + ["rotate"] * 4 + ["rotate_crop"] * 4 + ["centre"]


def _clustered_index(rng, n_img=400):
    """29 rows per image, variants 0-8 bits off the image; some images share a hash (exact ties)."""
    base = rng.integers(0, 2**64, n_img, dtype=np.uint64, endpoint=False)
    base[1::7] = base[0::7][: len(base[1::7])]  # duplicate images: ties broken by the lowest row
    h = np.repeat(base, 29)
    var = np.tile(np.array(VARIANTS, dtype=object), n_img)
    h[var != "image"] = flip_random_bits(rng, h[var != "image"], 8)
    sets = np.repeat(np.where(np.arange(n_img) % 3 == 0, "a", "b"), 29)
    return EvalIndex(pa.table({"set": sets.tolist(), "item": np.repeat(np.arange(n_img), 29).astype(str).tolist(),
                               "pixel_xxh3": [""] * len(h), "phash": pa.array(h, pa.uint64()),
                               "variant": var.tolist()}))


def _queries(rng, ref, n):
    q = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    near = rng.random(n) < 0.7
    q[near] = flip_random_bits(rng, ref[rng.integers(0, len(ref), int(near.sum()))], 14)
    q[:5] = ref[:5]  # exact copies of rows
    return q


def _same(a, b):
    assert np.array_equal(a.index, b.index) and np.array_equal(a.distance, b.distance)
    assert a.hit.tolist() == b.hit.tolist() and a.item.tolist() == b.item.tolist() and a.set.tolist() == b.set.tolist()


@pytest.mark.parametrize("threshold", [0, 1, 4, 7, 10, 13, {"a": 10, "b": 6}, {"a": 3}, 20, 64])
def test_mih_equals_brute_force_on_clustered_hashes(threshold):
    rng = np.random.default_rng(7)
    idx = _clustered_index(rng)
    n = 60 if threshold in (20, 64) else 400  # forced MIH at huge radii enumerates whole substring spaces
    q = _queries(rng, idx.phashes, n)
    hits = 0
    for region, variants in (("full", None), ("centre", None), ("full", ("image", "centre"))):
        brute = idx.query(q, threshold, region=region, variants=variants, method="brute")
        _same(brute, idx.query(q, threshold, region=region, variants=variants, method="mih"))
        _same(brute, idx.query(q, threshold, region=region, variants=variants, method="auto"))
        hits += int(brute.hit.sum())
        if threshold == 0 and region == "full" and variants is None:
            assert brute.distance[:5].tolist() == [0] * 5  # the rows themselves (image rows: no margin)
    assert hits > 0
    if threshold == 64:  # everything within reach: every query hits
        assert idx.query(q, 64, margins={}, method="mih").hit.all()


def test_ties_pick_the_lowest_row():
    h = np.array([5, 9, 5, 5, 1 << 40], dtype=np.uint64)
    idx = EvalIndex(pa.table({"set": ["s"] * 5, "item": list("abcde"), "pixel_xxh3": [""] * 5,
                              "phash": pa.array(h, pa.uint64()), "variant": ["image"] * 5}))
    q = np.array([5, 4, 9 ^ (1 << 63)], dtype=np.uint64)
    for method in ("brute", "mih"):
        m = idx.query(q, 3, method=method)
        assert m.index.tolist() == [0, 0, 1] and m.distance.tolist() == [0, 1, 1], method


@pytest.mark.parametrize("m", [3, 4, 5, 6, 8])
def test_multi_index_with_per_row_thresholds(m):
    rng = np.random.default_rng(m)
    ref = rng.integers(0, 2**64, 3000, dtype=np.uint64, endpoint=False)
    ref[100:200] = flip_random_bits(rng, ref[:100], 6)
    thr = rng.integers(-1, 13, len(ref)).astype(np.int16)
    q = _queries(rng, ref, 500)
    table = mih.MultiIndex(ref, m)
    want = brute_nearest(q, ref, thr, 256)
    for cap in (1 << 21, 50):  # one block, and many small blocks
        got = table.nearest(q, thr, max_candidates=cap)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert (want[0] >= 0).sum() > 100
    assert table.nbytes == sum((1 << w) + 1 for _, w in mih.split_bits(m)) * 4 + m * len(ref) * 12


def test_mih_equals_brute_force_on_a_real_index(tmp_path, shared_data):
    from PIL import Image

    photos = sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))[:10]
    (tmp_path / "eval").mkdir()
    for p in photos[:3]:
        (tmp_path / "eval" / p.name).write_bytes(p.read_bytes())
    idx = EvalIndex.build({"imgs": str(tmp_path / "eval")})
    rng = np.random.default_rng(3)
    own = idx.phashes[rng.integers(0, len(idx), 40)]
    q = np.concatenate([np.array([phash64(Image.open(p)) for p in photos], np.uint64), own, flip_random_bits(rng, own, 12)])
    for threshold in range(0, 65, 4):
        for region in ("full", "centre"):
            brute = idx.query(q, threshold, region=region, method="brute")
            _same(brute, idx.query(q, threshold, region=region, method="mih"))
    assert idx.query(q, 10, method="mih").hit[:3].all()


def test_choice_rule_and_table_cost():
    assert mih.choose_m(500, 10) is None  # tiny index: scan
    assert mih.choose_m(2_900_000, -1) is None  # nothing can match
    assert mih.choose_m(2_900_000, 40) is None  # radius too wide: candidates ~ every row
    assert mih.choose_m(100_000, 10) == 4 and mih.choose_m(2_900_000, 10) == 4
    assert mih.mih_cost(2_900_000, 4, 10) < 2_900_000 / 10
    assert [w for _, w in mih.split_bits(5)] == [13, 13, 13, 13, 12]
    assert len(mih.flip_masks(16, 2)) == mih.neighbours_count(16, 2) == 137
