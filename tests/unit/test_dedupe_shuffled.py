"""Pixel-shuffled copies (wit/imagehash/shuffled.py): the colour histogram an eval image's shuffled copy
arrives with, stored by `wit dedupe index --shuffled` and matched by dedupe's matcher."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from wit.cli import main as cli_main
from wit.dedupe.describe import DescribeStage
from wit.dedupe.index import SHUFFLED, EvalIndex
from wit.imagehash.shuffled import BINS, GATE, ShuffleIndex, lag2_correlation, looks_shuffled, shuffle_pixels

from tests.unit.test_dedupe_copy import _save_all
from tests.unit.test_dedupe_keypoints import _download_stored, _download_stored_jpeg, _jpeg, _textured

EVALS = _textured(8, seed=11)
OTHERS = _textured(6, seed=12)


def _shuffled_copy(img: Image.Image, seed: int) -> Image.Image:
    """A copy as a user would make one: its pixels permuted (not the index's permutation); ``_rows`` saves
    it as JPEG (AugLy's own copies, JPEG-encoded twice, are in the real-photo test below)."""
    return shuffle_pixels(img, seed=seed)


def _rows(images: list[Image.Image]):
    """Candidates as download stores them (resized, re-encoded): how a copy reaches dedupe."""
    import pyarrow as pa

    jpgs = [_download_stored_jpeg(im) for im in images]
    return pa.table({"uid": [f"q{i}" for i in range(len(images))], "jpg": pa.array(jpgs, pa.binary())})


def _stored(img: Image.Image) -> np.ndarray:
    return np.asarray(_download_stored(img).convert("RGB"))


def _describe(index_dir: str, images: list[Image.Image]) -> list[dict]:
    stage = DescribeStage(index_dir=index_dir)
    stage.setup()
    return stage.process_batch(_rows(images)).kept.to_pylist()


def test_shuffled_pixels_are_told_from_pictures():
    for img in EVALS + OTHERS:
        arr = np.asarray(img)
        assert lag2_correlation(arr) > GATE and not looks_shuffled(arr)
        assert looks_shuffled(np.asarray(_shuffled_copy(img, 5)))
    assert lag2_correlation(np.full((40, 40, 3), 7, np.uint8)) == 1.0  # flat: nothing to permute


def test_a_shuffled_copy_is_matched_to_its_own_eval_image_and_nothing_else(tmp_path):
    folder = _save_all(EVALS, tmp_path / "eval")
    EvalIndex.build({"e": str(folder)}, crop_variants=False, rotation_variants=False, shuffled=True).save(
        str(tmp_path / "ix"))
    copies = [_shuffled_copy(im, 100 + i) for i, im in enumerate(EVALS)]
    negatives = [_shuffled_copy(im, 200 + i) for i, im in enumerate(OTHERS)] + OTHERS
    rows = _describe(str(tmp_path / "ix"), copies + negatives)
    assert [(r["eval_match"], r["eval_match_by"]) for r in rows[:len(copies)]] == [
        (f"e:{i:03d}.png", "shuffled") for i in range(len(copies))]
    assert not any(r["eval_match"] for r in rows[len(copies):])


def test_two_eval_images_of_the_same_colours_are_declined_not_guessed(tmp_path):
    # a picture and its mirror hold the same pixels: a shuffled copy fits both equally, and the ratio
    # test declines rather than pick one
    folder = _save_all([EVALS[0], ImageOps.mirror(EVALS[0]), EVALS[1]], tmp_path / "eval")
    index = EvalIndex.build({"e": str(folder)}, crop_variants=False, rotation_variants=False, shuffled=True)
    j, dist = index.shuffled.match(_stored(_shuffled_copy(EVALS[0], 3)))
    assert j == -1 and dist < 0.06
    j, _ = index.shuffled.match(_stored(_shuffled_copy(EVALS[1], 3)))
    assert index.items[j] == "002.png"


def test_without_the_option_nothing_is_stored_or_decoded_for_it(tmp_path):
    folder = _save_all(EVALS[:2], tmp_path / "eval")
    ix = tmp_path / "ix"
    EvalIndex.build({"e": str(folder)}, shuffled=True).save(str(ix))
    assert (ix / SHUFFLED).exists() and len(EvalIndex.load(str(ix)).shuffled) == 2
    stage = DescribeStage(index_dir=str(ix))
    stage.setup()
    assert stage.pixels  # every image is looked at
    EvalIndex.build({"e": str(folder)}).save(str(ix))  # rebuilt without: the old file must go
    assert not (ix / SHUFFLED).exists() and EvalIndex.load(str(ix)).shuffled is None
    stage = DescribeStage(index_dir=str(ix))
    stage.setup()
    assert not stage.pixels
    assert not _describe(str(ix), [_shuffled_copy(EVALS[0], 9)])[0]["eval_match"]


def test_a_damaged_or_foreign_shuffle_file_is_one_clear_line(tmp_path):
    folder = _save_all(EVALS[:2], tmp_path / "eval")
    ix = tmp_path / "ix"
    EvalIndex.build({"e": str(folder)}, shuffled=True).save(str(ix))
    good = (ix / SHUFFLED).read_bytes()
    (ix / SHUFFLED).write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="shuffled.npz is damaged.*--shuffled"):
        EvalIndex.load(str(ix))
    (ix / SHUFFLED).write_bytes(ShuffleIndex(np.zeros((1, BINS ** 3), np.float16), [10 ** 6]).to_bytes())
    with pytest.raises(ValueError, match="names rows the index does not have"):
        EvalIndex.load(str(ix))


def test_cli_index_shuffled_and_overlap_agree(tmp_path, capsys):
    from wit.io import folders
    from wit.overlap.job import OverlapJob, run_overlap

    from tests.unit.test_dedupe_copy import _write_shard

    folder = _save_all(EVALS[:4], tmp_path / "eval")
    assert cli_main(["dedupe", "index", "--eval", f"e={folder}", "--out", str(tmp_path / "ix"), "--shuffled"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["shuffled"] == 4
    copies = [_shuffled_copy(im, 40 + i) for i, im in enumerate(EVALS[:4])]
    # shards hold what download stored (256 px), as in a wit run
    _write_shard(tmp_path / "shards" / "00000.tar", [(f"copy{i}", Image.fromarray(_stored(im))) for i, im in enumerate(copies)]
                 + [(f"other{i}", im) for i, im in enumerate(OTHERS[:3])])
    found = {r["eval_match"] for r in _describe(str(tmp_path / "ix"), copies) if r["eval_match_by"] == "shuffled"}
    assert found == {f"e:{i:03d}.png" for i in range(4)}
    out = tmp_path / "overlap"
    run_overlap(OverlapJob([str(tmp_path / "shards")], {"e": str(folder)}, str(out), shuffled=True), progress=False)
    items = folders.read_parquet(str(out / "items.parquet")).to_pylist()
    assert {r["item"] for r in items if r["overlap"]} == {f"{i:03d}.png" for i in range(4)}
    assert {r["matched_by"] for r in items if r["overlap"]} == {"shuffled"}


def test_augly_shuffle_pixels_on_real_photos(shared_data):
    pytest.importorskip("augly")
    from wit.dedupe.augly_suite import augment
    photos = sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))
    evals = [Image.open(p).convert("RGB") for p in photos[:16]]
    others = [Image.open(p).convert("RGB") for p in photos[200:216]]

    def stored(img):  # AugLy's copy, saved as JPEG, as download keeps it
        return _stored(_jpeg(augment(img, "ShufflePixels", img)))

    from wit.dedupe.index import _stored_jpeg
    from wit.imagehash.shuffled import BINS, expected_histogram

    ix = ShuffleIndex(np.array([expected_histogram(im, _stored_jpeg) for im in evals], np.float16).reshape(-1, BINS ** 3),
                      list(range(len(evals))))
    hits = sum(ix.match(stored(im))[0] == i for i, im in enumerate(evals))
    assert hits >= 14, hits  # of 16 (the benchmark: 0.97 of 125)
    assert sum(ix.match(stored(o))[0] >= 0 for o in others) <= 1  # same-colour photos can collide; rarely
    assert all(ix.match(np.asarray(o))[0] == -1 for o in others)  # unshuffled: never compared


def test_a_save_killed_part_way_leaves_no_index_to_be_taken_for_whole(tmp_path, monkeypatch):
    # the pipeline's dedupe step reuses an index folder whose index.parquet exists: a save cut off after
    # the rows but before the shuffled histograms must not pass for an index built with them
    folder = _save_all(EVALS[:2], tmp_path / "eval")
    ix = tmp_path / "ix"
    EvalIndex.build({"e": str(folder)}, crop_variants=False).save(str(ix))  # an earlier index in the folder
    index = EvalIndex.build({"e": str(folder)}, crop_variants=False, shuffled=True)

    def killed(self):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ShuffleIndex, "to_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        index.save(str(ix))
    assert not (ix / "index.parquet").exists()
    monkeypatch.undo()
    index.save(str(ix))
    assert len(EvalIndex.load(str(ix)).shuffled) == 2


def test_lag2_correlation_is_pearsons_r_of_the_pairs():
    from wit.imagehash.shuffled import lag2_correlation

    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.normal(0, 4, (90, 120, 3)), axis=1).clip(-120, 120).astype(np.int16) + 128
    for arr in (rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), smooth.astype(np.uint8)):
        g = arr[::2, ::2].astype(np.float64).mean(axis=2)
        x = np.concatenate([g[:, :-1].ravel(), g[:-1, :].ravel()])
        y = np.concatenate([g[:, 1:].ravel(), g[1:, :].ravel()])
        assert lag2_correlation(arr) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-4)
    assert lag2_correlation(np.full((40, 40, 3), 9, np.uint8)) == 1.0
