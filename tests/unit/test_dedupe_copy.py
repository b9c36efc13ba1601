"""Copy detection beyond pHash (#19): turn/mirror index rows, the TorchScript copy descriptor (wit's
trained one and a user's), threshold calibration, bad checkpoints, and the AugLy suite."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from wit.cli import main as cli_main
from wit.dedupe.detector import make_embedder
from wit.dedupe.index import EvalIndex
from wit.dedupe.learned import CheckpointError, CopyDescriptor, calibrate_threshold, needed_distractors
from wit.dedupe.describe import DescribeStage

TINY = dict(input_size=32, width=4, dim=16, steps=3, batch=8, target_fpr=0.01, threads=1)


def _drawings(n: int, seed: int = 0) -> list[Image.Image]:
    from wit.world.concepts import vocabulary
    from wit.world.render import draw

    rng = random.Random(seed)
    voc = vocabulary("small")
    concepts = voc["shapes"] + voc["objects"]
    return [draw(rng.sample(concepts, rng.randint(1, 3)), (rng.randint(96, 200), rng.randint(96, 200)), rng)
            for _ in range(n)]


def _save_all(images, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        im.convert("RGB").save(folder / f"{i:03d}.png")
    return folder


def _rows(images, prefix="q") -> pa.Table:
    """Candidates as describe reads them without download's columns: only the stored JPEG."""
    jpgs = []
    for im in images:
        b = io.BytesIO()
        im.convert("RGB").save(b, "JPEG", quality=90)
        jpgs.append(b.getvalue())
    return pa.table({"uid": [f"{prefix}{i}" for i in range(len(images))], "jpg": pa.array(jpgs, pa.binary())})


def _pooling_model(path, cells: int = 4):
    """A user's TorchScript 'descriptor' with no wit metadata: the image average-pooled to cells x cells."""
    import torch

    class Pool(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cells = cells

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, self.cells).flatten(1)

    torch.jit.save(torch.jit.script(Pool()), str(path))
    return str(path)


# --- calibration -------------------------------------------------------------------------------

def test_calibration_refuses_too_few_distractors_and_says_how_many():
    assert needed_distractors(0.001) == 3000
    ref = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"needs at least 3000 distractor images; 2999 given"):
        calibrate_threshold(ref, np.zeros((2999, 4), np.float32), 0.001)


def test_calibration_meets_the_target_rate():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 32)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    neg = rng.normal(size=(3000, 32)).astype(np.float32)
    neg /= np.linalg.norm(neg, axis=1, keepdims=True)
    copies = ref + 0.05 * rng.normal(size=ref.shape).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    cal = calibrate_threshold(ref, neg, 0.001, copies)
    best = (neg @ ref.T).max(axis=1)
    assert (best >= cal.threshold).sum() == 3 == round(cal.fpr * 3000)  # exactly the allowed three
    assert (best >= np.sort(best)[-4]).sum() == 4  # and no lower threshold keeps to it
    assert cal.recall == 1.0


# --- the TorchScript path: a user's model, the index, describe -----------------------------------

@pytest.mark.slow  # ~60 s at load ~10 on 2 cores (first TorchScript compile and index build)
def test_user_torchscript_with_given_threshold_matches_copies(tmp_path):
    evals = _drawings(6, seed=1)
    folder = _save_all(evals, tmp_path / "eval")
    emb = make_embedder(None, _pooling_model(tmp_path / "pool.pt"), 0.999)
    assert isinstance(emb, CopyDescriptor) and emb.dim == 48
    index = EvalIndex.build({"e": str(folder)}, crop_variants=False, rotation_variants=False, centre=False, embedder=emb)
    index.save(str(tmp_path / "ix"))
    model = json.loads((tmp_path / "ix" / "model.json").read_text())
    assert model["kind"] == "torchscript" and model["threshold"] == 0.999 and model["dim"] == 48
    stage = DescribeStage(index_dir=str(tmp_path / "ix"), threshold=-1, centre_hash=False)
    stage.setup()
    copies = [im.resize((im.width // 2, im.height // 2)) for im in evals]
    d = stage.process_batch(_rows(copies + _drawings(6, seed=2))).kept
    by, match = d.column("eval_match_by").to_pylist(), d.column("eval_match").to_pylist()
    assert by[:6] == ["embedding"] * 6
    assert match[:6] == [f"e:{i:03d}.png" for i in range(6)]
    assert by[6:] == [""] * 6


def test_foreign_torchscript_needs_a_threshold(tmp_path):
    emb = make_embedder(None, _pooling_model(tmp_path / "pool.pt"))
    with pytest.raises(CheckpointError, match="no calibrated threshold"):
        emb.describe()


def test_bad_checkpoint_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    folder = _save_all(_drawings(2), tmp_path / "eval")
    rc = cli_main(["dedupe", "index", "--eval", f"e={folder}", "--checkpoint", str(bad), "--out", str(tmp_path / "ix")])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1 and "does not load as TorchScript" in err and str(bad) in err
    rc = cli_main(["dedupe", "index", "--eval", f"e={folder}", "--checkpoint", str(tmp_path / "none.pt"),
                   "--out", str(tmp_path / "ix")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "not found" in err


def test_embedding_size_mismatch_is_refused(tmp_path):
    folder = _save_all(_drawings(3), tmp_path / "eval")
    EvalIndex.build({"e": str(folder)}, crop_variants=False, rotation_variants=False, centre=False,
                    embedder=make_embedder(None, _pooling_model(tmp_path / "p4.pt", 4), 0.99)).save(str(tmp_path / "ix"))
    model_json = tmp_path / "ix" / "model.json"
    m = json.loads(model_json.read_text())
    m["checkpoint"] = _pooling_model(tmp_path / "p2.pt", 2)  # 12-d, the index holds 48-d
    model_json.write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="gives 12-d embeddings but the eval index holds 48-d"):
        DescribeStage(index_dir=str(tmp_path / "ix")).setup()


# --- training ----------------------------------------------------------------------------------

@pytest.mark.slow  # ~60 s at load ~10 on 2 cores (TorchScript compile, 300 edited negatives)
def test_train_detector_saves_a_calibrated_torchscript(tmp_path):
    from wit.dedupe.train_detector import TrainDetectorConfig, strong_view, train_detector

    images = _save_all(_drawings(24), tmp_path / "photos")
    rep = train_detector(str(images), str(tmp_path / "det.pt"), TrainDetectorConfig(**TINY))
    assert rep.images == 24 and rep.held_out == 2 and rep.steps == 3
    assert rep.calibration["distractors"] >= 300 and rep.calibration["fpr"] <= 0.01
    det = CopyDescriptor(str(tmp_path / "det.pt"))
    assert det.meta["input_size"] == 32 and det.dim == 16
    assert det.threshold == pytest.approx(rep.calibration["threshold"], abs=1e-5)
    ims = _drawings(3, seed=5)
    e = det.embed(ims + [strong_view(ims[0], random.Random(0), ims)])
    assert e.shape == (4, 16) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


def test_eval_index_recalibrates_the_detector_threshold_to_its_own_images(tmp_path, caplog):
    """A trained checkpoint carries its calibration negatives; an index built with it sets the
    threshold so that at most target_fpr of them have an index image at or above it, each negative's
    best similarity over this index's images being one trial. More images: a threshold as high or
    higher. A threshold the user gives is kept."""
    import logging

    import torch

    from wit.dedupe.learned import NEGATIVES
    from wit.dedupe.train_detector import TrainDetectorConfig, train_detector

    rep = train_detector(str(_save_all(_drawings(24), tmp_path / "photos")), str(tmp_path / "det.pt"),
                         TrainDetectorConfig(**TINY))
    extra = {NEGATIVES: ""}
    torch.jit.load(str(tmp_path / "det.pt"), _extra_files=extra)
    negatives = np.load(io.BytesIO(extra[NEGATIVES])).astype(np.float32)
    assert negatives.shape == (rep.calibration["distractors"], 16)
    evals = _drawings(40, seed=9)
    thresholds = {}
    for n in (4, 40):
        det = CopyDescriptor(str(tmp_path / "det.pt"))
        with caplog.at_level(logging.INFO, logger="wit.dedupe.learned"):
            index = EvalIndex.build({"e": str(_save_all(evals[:n], tmp_path / f"eval{n}"))}, embedder=det)
        best = (negatives @ index.embeddings.T).max(axis=1)
        t = index.model["threshold"]
        assert (best >= t).mean() <= TINY["target_fpr"]  # the target, on this index
        assert (best >= np.nextafter(np.float32(t), np.float32(-2))).mean() > TINY["target_fpr"] or t <= best.min()
        assert index.model["index_calibration"]["index_images"] == n
        assert f"for this index of {n} images" in caplog.text
        thresholds[n] = t
    assert thresholds[40] >= thresholds[4]
    # `wit overlap --detector` without a threshold sets it against the same eval images: dedupe's and
    # overlap's verdicts use one threshold
    import webdataset as wds

    from wit.overlap.job import OverlapJob, run_overlap

    (tmp_path / "shards").mkdir()
    with wds.TarWriter(str(tmp_path / "shards" / "00000.tar")) as sink:
        for i, im in enumerate(_drawings(4, seed=3)):
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=92)
            sink.write({"__key__": f"t{i}", "jpg": buf.getvalue(), "txt": "x"})
    run_overlap(OverlapJob([str(tmp_path / "shards")], {"e": str(tmp_path / "eval40")}, str(tmp_path / "ov"),
                           detector=str(tmp_path / "det.pt")), progress=False)
    learned = json.loads((tmp_path / "ov" / "report.json").read_text())["meta"]["detector"]["learned"]
    assert learned["threshold"] == pytest.approx(thresholds[40], abs=1e-5)
    given = EvalIndex.build({"e": str(tmp_path / "eval4")}, embedder=CopyDescriptor(str(tmp_path / "det.pt"), threshold=0.5))
    assert given.model["threshold"] == 0.5 and "index_calibration" not in given.model
    few = CopyDescriptor(str(tmp_path / "det.pt"))
    few.dim  # loads
    few._negatives = few._negatives[:10]  # fewer than 3 / target_fpr: its own threshold stays
    assert few.calibrate_to(index.embeddings) is None and few.threshold == pytest.approx(rep.calibration["threshold"], abs=1e-5)


def test_cli_train_and_calibrate_detector(tmp_path, capsys):
    images = _save_all(_drawings(12), tmp_path / "photos")
    few = _save_all(_drawings(5, seed=3), tmp_path / "few")
    rc = cli_main(["dedupe", "calibrate-detector", "--checkpoint", _pooling_model(tmp_path / "pool.pt"),
                   "--images", str(images), "--distractors", str(few), "--out", str(tmp_path / "cal.pt")])
    err = capsys.readouterr().err
    assert rc != 0 and "needs at least 3000 distractor images" in err and "holds 5" in err
    rc = cli_main(["dedupe", "calibrate-detector", "--checkpoint", _pooling_model(tmp_path / "pool.pt"),
                   "--images", str(images), "--distractors", str(few), "--target-fpr", "0.6",
                   "--out", str(tmp_path / "cal.pt")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["distractors"] == 5 and out["fpr"] <= 0.6
    cal = CopyDescriptor(str(tmp_path / "cal.pt"))
    assert cal.dim == 48 and cal.threshold == pytest.approx(out["threshold"], abs=1e-5)  # loads, then reads
    rc = cli_main(["dedupe", "train-detector", "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "x.pt")])
    assert rc != 0 and "at least" in capsys.readouterr().err


# --- cheap wins: turned and mirrored copies ----------------------------------------------------

def _found_without_and_with_turns(folder, copies, tmp_path, rows="dihedral_variants") -> dict[bool, list[str]]:
    """The eval match of each copy, against an index of ``folder`` without and with turn rows (or the
    index option ``rows``)."""
    found = {}
    for turns in (False, True):
        EvalIndex.build({"e": str(folder)}, **{rows: turns}).save(str(tmp_path / f"ix{turns}"))
        stage = DescribeStage(index_dir=str(tmp_path / f"ix{turns}"))
        stage.setup()
        found[turns] = stage.process_batch(_rows(copies)).kept.column("eval_match").to_pylist()
    return found


def test_turn_rows_catch_vertical_flips_and_quarter_turns(tmp_path):
    evals = _drawings(4, seed=7)
    folder = _save_all(evals, tmp_path / "eval")
    copies = [evals[0].transpose(Image.Transpose.FLIP_TOP_BOTTOM), evals[1].transpose(Image.Transpose.ROTATE_90),
              evals[2].transpose(Image.Transpose.ROTATE_180), evals[3].transpose(Image.Transpose.TRANSPOSE)]
    found = _found_without_and_with_turns(folder, copies, tmp_path)
    assert found[True] == [f"e:{i:03d}.png" for i in range(4)]
    assert found[False].count("") >= 3  # pHash and its mirror alone miss them (a drawing may be symmetric)


def test_largest_upright_rect_fits_inside_the_turned_picture_and_is_largest():
    import math

    from wit.dedupe.index import largest_upright_rect

    rng = random.Random(3)
    assert largest_upright_rect(100, 100, 45) == pytest.approx((100 / math.sqrt(2),) * 2)
    assert largest_upright_rect(200, 100, 0) == pytest.approx((200, 100))
    for _ in range(300):
        w, h, deg = rng.uniform(20, 400), rng.uniform(20, 400), rng.uniform(-360, 360)
        rw, rh = largest_upright_rect(w, h, deg)
        a = math.radians(deg)

        def inside(rw, rh) -> bool:  # every corner, turned back, lies in the picture
            return all(abs(x * math.cos(a) + y * math.sin(a)) <= w / 2 + 1e-6 and
                       abs(-x * math.sin(a) + y * math.cos(a)) <= h / 2 + 1e-6
                       for x in (-rw / 2, rw / 2) for y in (-rh / 2, rh / 2))
        assert rw > 0 and rh > 0 and inside(rw, rh)
        # no upright rectangle of larger area fits: scan aspect ratios around the one found
        best = rw * rh
        for k in range(1, 40):
            t = (rw / rh) * 1.08 ** (k - 20)
            lo, hi = 0.0, 2 * max(w, h)
            for _ in range(40):  # the largest height of aspect t that fits
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if inside(t * mid, mid) else (lo, mid)
            assert t * lo * lo <= best * (1 + 1e-6)


def test_turn_rows_catch_rotations_all_round_framed_to_the_corner_free_rectangle(tmp_path):
    from wit.dedupe.index import rotate_framed

    evals = _drawings(6, seed=11)
    folder = _save_all(evals, tmp_path / "eval")
    angles = [37.0, 61.5, 123.0, 201.0, 250.5, 322.0]  # between the indexed 4-degree steps
    copies = [rotate_framed(im.convert("RGB"), a) for im, a in zip(evals, angles)]
    found = _found_without_and_with_turns(folder, copies, tmp_path)
    assert found[True] == [f"e:{i:03d}.png" for i in range(6)]
    assert found[False].count("") >= 5


def test_warp_rows_catch_large_crops_and_shears(tmp_path):
    from wit.dedupe.index import crops, shear

    evals = _drawings(6, seed=21)
    folder = _save_all(evals, tmp_path / "eval")
    # half of each side (at the centre, a corner, an edge) and shears between and on the rows' factors
    copies = [crops(evals[0], [(0.5, 0.5, 0.5)])[0], crops(evals[1], [(0.5, 0, 1)])[0],
              crops(evals[2], [(0.5, 1, 0.5)])[0], shear(evals[3], 0.5, 0), shear(evals[4], -0.33, 1),
              shear(evals[5], 0.62, 0)]
    found = _found_without_and_with_turns(folder, copies, tmp_path, rows="warp_variants")
    assert found[True] == [f"e:{i:03d}.png" for i in range(6)]
    assert found[False].count("") >= 5


def test_augly_suite_on_real_photos(shared_data):
    pytest.importorskip("augly")
    from wit.dedupe.augly_suite import FAMILIES, suite, transform_names

    names = transform_names()
    assert len(names) == 40 and all(m in names for ms in FAMILIES.values() for m in ms)
    photos = sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))[:2]
    a, b = (Image.open(p).convert("RGB") for p in photos)
    out = suite(a, b, ["VFlip", "MemeFormat", "PerspectiveTransform", "Pad"])
    assert np.array_equal(np.asarray(out["VFlip"]), np.asarray(a)[::-1])
    assert out["MemeFormat"].height > a.height and out["Pad"].width > a.width
    assert not np.array_equal(np.asarray(out["PerspectiveTransform"]), np.asarray(a))
    # the caption band holds the text: the picture under it is untouched (as AugLy under Pillow 9 drew it)
    meme = np.asarray(out["MemeFormat"])
    assert np.array_equal(meme[meme.shape[0] - a.height:], np.asarray(a))
    assert (meme[: meme.shape[0] - a.height] < 64).any()  # and there is text in it


def test_border_trimming_finds_padded_copies(tmp_path):
    from PIL import ImageOps

    from wit.imagehash.borders import trim_border

    evals = _drawings(3, seed=11)
    folder = _save_all(evals, tmp_path / "eval")
    im = evals[0].convert("RGB")
    assert trim_border(im) is im
    padded = ImageOps.expand(im, border=(im.width // 4, im.height // 4), fill=(0, 0, 0))
    assert trim_border(padded).size == im.size
    squared = Image.new("RGB", (max(evals[1].size),) * 2, (0, 0, 0))
    squared.paste(evals[1], ((squared.width - evals[1].width) // 2, (squared.height - evals[1].height) // 2))
    EvalIndex.build({"e": str(folder)}).save(str(tmp_path / "ix"))
    copies = [padded, squared]
    found = {}
    for trim in (False, True):
        stage = DescribeStage(index_dir=str(tmp_path / "ix"), trim_borders=trim)
        stage.setup()
        d = stage.process_batch(_rows(copies)).kept
        found[trim] = list(zip(d.column("eval_match").to_pylist(), d.column("eval_match_by").to_pylist()))
    assert [m for m, _ in found[True]] == ["e:000.png", "e:001.png"]
    assert all(by.startswith("trimmed") for _, by in found[True] if by not in [b for _, b in found[False]])
    assert found[False][0] == ("", "")  # a 25 % black pad defeats every pHash row


def test_overlap_step_takes_the_dedupe_threshold():
    from wit.config import RunSpec
    from wit.overlap.detector import DEFAULT_THRESHOLD
    from wit.overlap.step import _default_threshold

    assert _default_threshold(RunSpec()) == DEFAULT_THRESHOLD
    assert _default_threshold(RunSpec(dedupe={"phash_threshold": 6})) == 6
    assert _default_threshold(RunSpec(dedupe={"phash_threshold": 6}, overlap={"default_threshold": 8})) == 8


def test_overlap_uses_the_learned_detector(tmp_path):
    """`wit overlap --detector`: the Overlap split takes the embedding's verdict beside the pHash's."""
    import webdataset as wds

    from wit.io import folders
    from wit.overlap.job import OverlapJob, run_overlap

    evals = _drawings(6, seed=1)
    for i, im in enumerate(evals):
        (tmp_path / "eval" / f"c{i}").mkdir(parents=True)
        im.convert("RGB").save(tmp_path / "eval" / f"c{i}" / "0000.png")
    (tmp_path / "shards").mkdir()
    with wds.TarWriter(str(tmp_path / "shards" / "00000.tar")) as sink:
        samples = [(f"copy{i}", im.resize((im.width // 2, im.height // 2))) for i, im in enumerate(evals[:3])]
        samples += [(f"other{i}", im) for i, im in enumerate(_drawings(6, seed=2))]
        for key, im in samples:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=92)
            sink.write({"__key__": key, "jpg": buf.getvalue(), "txt": key})
    pool = _pooling_model(tmp_path / "pool.pt")
    results = {}
    for phash_threshold in (-1, 10):  # -1: no pHash verdict, the embedding's alone
        out = tmp_path / f"report{phash_threshold}"
        run_overlap(OverlapJob([str(tmp_path / "shards")], {"e": str(tmp_path / "eval")}, str(out),
                               default_threshold=phash_threshold, detector=pool, embed_threshold=0.999), progress=False)
        results[phash_threshold] = {r["item"]: r for r in folders.read_parquet(str(out / "items.parquet")).to_pylist()}
        meta = json.loads((out / "report.json").read_text())["meta"]["detector"]
        assert meta["learned"]["threshold"] == 0.999 and "learned copy descriptor" in meta["descriptor"]
    only = results[-1]
    assert sorted(k for k, r in only.items() if r["overlap"]) == [f"c{i}/0000.png" for i in range(3)]
    for i in range(3):
        r = only[f"c{i}/0000.png"]
        assert r["matched_by"] == "embedding" and r["cosine"] >= 0.999 and r["train_key"] == f"copy{i}"
    assert all(only[f"c{i}/0000.png"]["cosine"] < 0.999 and only[f"c{i}/0000.png"]["matched_by"] == ""
               for i in range(3, 6))
    both = results[10]
    assert [both[f"c{i}/0000.png"]["matched_by"] for i in range(3)] == ["phash+embedding"] * 3
    assert not any(both[f"c{i}/0000.png"]["overlap"] for i in range(3, 6))
    # `--index` of an index built with the detector brings the detector and its threshold along
    from wit.dedupe.index import build_index_cli

    build_index_cli([f"e={tmp_path / 'eval'}"], str(tmp_path / "ix"), checkpoint=pool, embed_threshold=0.999)
    out = tmp_path / "with-index"
    run_overlap(OverlapJob([str(tmp_path / "shards")], {"e": str(tmp_path / "eval")}, str(out), default_threshold=-1,
                           index_dir=str(tmp_path / "ix")), progress=False)
    via_index = {r["item"]: r for r in folders.read_parquet(str(out / "items.parquet")).to_pylist()}
    assert {k for k, r in via_index.items() if r["overlap"]} == {k for k, r in only.items() if r["overlap"]}
    assert json.loads((out / "report.json").read_text())["meta"]["detector"]["learned"]["threshold"] == 0.999


def test_overlap_step_takes_the_dedupe_detector():
    from wit.config import RunSpec
    from wit.overlap.step import _detector

    assert _detector(RunSpec()) == {}
    d = RunSpec(dedupe={"checkpoint": "/m/copy.pt", "embed_threshold": 0.8})
    assert _detector(d) == {"detector": "/m/copy.pt", "detector_model": None, "embed_threshold": 0.8}
    own = RunSpec(dedupe={"checkpoint": "/m/copy.pt", "embed_threshold": 0.8}, overlap={"checkpoint": "/m/other.pt"})
    assert _detector(own) == {"detector": "/m/other.pt", "detector_model": None, "embed_threshold": None}


def test_overlap_step_takes_the_dedupe_copy_detector():
    from wit.config import RunSpec
    from wit.overlap.step import _copy_detector, _thresholds

    spec = RunSpec(dedupe={"warp_variants": True, "keypoints": True, "shuffled": True, "match_flips": False,
                           "thresholds": {"a": 6, "z": 4}},
                   overlap={"eval": {"a": "/e/a", "b": "/e/b"}, "thresholds": {"b": 8}})
    assert _copy_detector(spec) == {"variant_rows": True, "crop_variants": True, "rotation_variants": True,
                                    "centre": True, "turns": False, "warps": True, "keypoints": True,
                                    "shuffled": True, "match_flips": False}
    assert _thresholds(spec) == {"a": 6, "b": 8}
    assert _copy_detector(RunSpec(overlap={"copy_detector": False})) == {"variant_rows": False}


def _meme(im: Image.Image, band: int, text: str = "LOL") -> Image.Image:
    """``im`` under a white caption band of ``band`` px with black text in it (blank lines around it)."""
    from PIL import ImageDraw, ImageFont

    out = Image.new("RGB", (im.width, im.height + band), (255, 255, 255))
    out.paste(im.convert("RGB"), (0, band))
    font = ImageFont.load_default(size=max(8, band // 2))
    ImageDraw.Draw(out).text((im.width // 8, band // 5), text, fill=(0, 0, 0), font=font)
    return out


def test_band_box_finds_padding_and_caption_bands():
    from wit.imagehash.borders import band_box, trim_border

    rng = np.random.default_rng(3)
    pic = rng.integers(40, 220, (120, 90), dtype=np.uint8)  # no line of it is one colour
    assert band_box(pic) is None
    padded = np.zeros((200, 150), np.uint8)
    padded[40:160, 30:120] = pic
    assert band_box(padded) == (30, 40, 120, 160)
    # a caption band taller than the picture itself, with text lines in it
    meme = np.asarray(_meme(Image.fromarray(pic), band=140).convert("L"))
    assert band_box(meme) == (0, 140, 90, 260)
    assert trim_border(Image.fromarray(meme)).size == (90, 120)
    assert band_box(np.full((50, 50), 255, np.uint8)) is None  # one colour: no picture inside
    thin = np.full((200, 200), 255, np.uint8)
    thin[90:110, 90:110] = pic[:20, :20]
    assert band_box(thin) is None  # bands leaving < 25 % of the area are the picture
    # the quick pre-check download runs never hides a band band_box would find
    from wit.imagehash.borders import may_have_bands

    for a in (pic, padded, meme, thin, np.full((50, 50), 255, np.uint8), pic[:1], padded[:, :1]):
        assert may_have_bands(Image.fromarray(a)) or band_box(a) is None
    assert may_have_bands(Image.fromarray(padded)) and not may_have_bands(Image.fromarray(pic))


def test_download_trimmed_phash_finds_padded_and_captioned_copies_without_decoding(tmp_path):
    from PIL import ImageOps

    from wit import schemas
    from wit.download.image import prepare
    from wit.imagehash.borders import trim_border
    from wit.imagehash.descriptors import phash64

    evals = _drawings(3, seed=13)
    folder = _save_all(evals, tmp_path / "eval")
    EvalIndex.build({"e": str(folder)}).save(str(tmp_path / "ix"))
    copies = [ImageOps.expand(evals[0].convert("RGB"), border=(40, 30), fill=(0, 0, 0)),
              _meme(evals[1], band=90), evals[2]]
    rows = []
    for i, im in enumerate(copies):
        b = io.BytesIO()
        im.convert("RGB").save(b, "PNG")
        p = prepare(b.getvalue(), image_size=128)
        stored = Image.open(io.BytesIO(p.jpg))
        # download's hash is trim_border's on the resized picture; a picture without bands has none
        assert p.phash_trimmed == (None if i == 2 else phash64(trim_border(stored)))
        rows.append({"uid": f"q{i}", "jpg": b"not decodable: describe must use download's columns",
                     "phash": p.phash, "phash_flip": p.phash_flip, "pixel_xxh3": p.pixel_xxh3,
                     "phash_centre": p.phash_centre, "phash_centre_flip": p.phash_centre_flip,
                     "phash_trimmed": p.phash_trimmed})
    # input written before download stored descriptors: nulls (filter adds the columns), a real JPEG
    b = io.BytesIO()
    copies[0].convert("RGB").save(b, "JPEG", quality=90)
    rows.append({"uid": "legacy", "jpg": b.getvalue()})
    schema = pa.schema([("uid", pa.string()), ("jpg", pa.binary())] + schemas.DESCRIPTOR_FIELDS)
    stage = DescribeStage(index_dir=str(tmp_path / "ix"))
    stage.setup()
    d = stage.process_batch(pa.Table.from_pylist(rows, schema=schema)).kept
    assert d.column("eval_match").to_pylist() == ["e:000.png", "e:001.png", "e:002.png", "e:000.png"]
    assert d.column("eval_match_by").to_pylist()[:2] == ["trimmed:image", "trimmed:image"]
    assert d.column("eval_match_by").to_pylist()[3] == "trimmed:image"  # from the decoded pixels
    assert d.column("error").to_pylist() == ["", "", "", ""]
    rows.pop()
    off = DescribeStage(index_dir=str(tmp_path / "ix"), trim_borders=False)
    off.setup()
    assert off.process_batch(pa.Table.from_pylist(rows, schema=schema)).kept.column("eval_match").to_pylist()[:2] \
        == ["", ""]


def test_cli_index_turns_and_warps_add_their_rows(tmp_path, capsys):
    from wit.dedupe.index import DIHEDRAL, LARGE_CROPS, SHEARS, WIDE_ROTATIONS

    folder = _save_all(_drawings(2, seed=5), tmp_path / "eval")
    assert cli_main(["dedupe", "index", "--eval", f"e={folder}", "--out", str(tmp_path / "a")]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows_per_image"]
    assert cli_main(["dedupe", "index", "--eval", f"e={folder}", "--turns", "--warps",
                     "--out", str(tmp_path / "b")]) == 0
    more = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows_per_image"]
    assert "shear" not in plain and "crop_large" not in plain and "dihedral" not in plain
    assert more == plain | {"dihedral": len(DIHEDRAL), "rotate_wide": len(WIDE_ROTATIONS),
                            "crop_large": len(LARGE_CROPS), "shear": len(SHEARS)}


def _write_shard(path, samples) -> None:
    import webdataset as wds

    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as sink:
        for key, im in samples:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=92)
            sink.write({"__key__": key, "jpg": buf.getvalue(), "txt": key})


def test_overlap_and_dedupe_run_one_copy_detector(tmp_path, capsys):
    """Copies the nearest pHash misses (a 20 % crop, an 8-degree rotation, a 25 % pad, a caption band) are
    Overlap exactly where dedupe calls them eval copies, by the same descriptor; --phash-only misses them."""
    from PIL import ImageOps

    from wit.dedupe.index import rotate
    from wit.io import folders
    from wit.overlap.job import OverlapJob, run_overlap

    evals = _drawings(8, seed=21)
    eval_dir = _save_all(evals, tmp_path / "eval")
    e = [im.convert("RGB") for im in evals]
    w, h = e[0].size
    copies = [e[0].crop((int(w * 0.2), int(h * 0.2), w, h)), rotate(e[1], 8, crop=False),
              ImageOps.expand(e[2], border=(e[2].width // 4, e[2].height // 4), fill=(0, 0, 0)), _meme(e[3], 40),
              e[4].resize((e[4].width // 2, e[4].height // 2))]
    others = _drawings(10, seed=22)
    _write_shard(tmp_path / "shards" / "00000.tar", [(f"copy{i}", im) for i, im in enumerate(copies)]
                 + [(f"other{i}", im) for i, im in enumerate(others)])
    EvalIndex.build({"e": str(eval_dir)}).save(str(tmp_path / "ix"))
    stage = DescribeStage(index_dir=str(tmp_path / "ix"))
    stage.setup()
    d = stage.process_batch(_rows(copies + others)).kept.to_pylist()
    dedupe_found = {r["eval_match"].split(":", 1)[1]: r["eval_match_by"] for r in d if r["eval_match"]}
    assert set(dedupe_found) == {f"{i:03d}.png" for i in range(5)}, dedupe_found

    def overlap(name, **kw):
        out = tmp_path / name
        run_overlap(OverlapJob([str(tmp_path / "shards")], {"e": str(eval_dir)}, str(out), **kw), progress=False)
        return {r["item"]: r for r in folders.read_parquet(str(out / "items.parquet")).to_pylist() if r["overlap"]}

    same = overlap("built")
    assert set(same) == set(dedupe_found)
    for item, r in same.items():
        assert r["train_key"] == f"copy{int(item[:3])}"
        # the pHash nearest finds the resized copy itself; the rest carry dedupe's descriptor
        assert r["matched_by"] == ("phash" if dedupe_found[item].startswith("phash:image") else dedupe_found[item])
        # the distance shown is the one between the two images shown: beyond the threshold for the detector's
        assert (r["distance"] <= 10) == (r["matched_by"] == "phash"), r
    assert set(overlap("given", index_dir=str(tmp_path / "ix"))) == set(dedupe_found)
    plain = overlap("plain", variant_rows=False)
    assert set(plain) < set(same) and "004.png" in plain
    doc = json.loads((tmp_path / "built" / "report.json").read_text())
    assert doc["meta"]["detector"]["copy_detector"]["rows_per_image"]["crop"] == 19
    assert sum(doc["sets"]["e"]["matched_by"].values()) == len(same)
    assert "dedupe's copy detector" in (tmp_path / "built" / "report.md").read_text()

    args = ["overlap", "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "cli"), "--no-progress"]
    assert cli_main(args + ["--eval", f"e={eval_dir}", "--index", str(tmp_path / "ix")]) == 0
    assert json.loads(capsys.readouterr().out)["n_overlap"] == {"e": len(same)}
    assert cli_main(args + ["--eval", f"other={eval_dir}", "--index", str(tmp_path / "ix")]) == 2
    assert "holds no set 'other'" in capsys.readouterr().err
    assert cli_main(args + ["--eval", f"e={eval_dir}", "--phash-only", "--warps"]) == 2


def test_overlap_hashes_again_when_the_detector_changes(tmp_path):
    """OUT/_train_hashes is reused only under the settings it was written with."""
    from wit.io import folders
    from wit.overlap.job import HASHES_DIR, OverlapJob, run_overlap

    evals = _drawings(3, seed=31)
    eval_dir = _save_all(evals, tmp_path / "eval")
    from wit.dedupe.index import rotate

    _write_shard(tmp_path / "shards" / "00000.tar", [("copy0", rotate(evals[0].convert("RGB"), 8, crop=False))])
    out = tmp_path / "out"
    n = {}
    for rows in (False, True, False):
        run_overlap(OverlapJob([str(tmp_path / "shards")], {"e": str(eval_dir)}, str(out), variant_rows=rows),
                    progress=False)
        parts = folders.expand(str(out / HASHES_DIR), (".parquet",))
        assert ("eval_set" in folders.parquet_schema(parts[0]).names) == rows
        n[rows] = json.loads((out / "report.json").read_text())["sets"]["e"]["n_overlap"]
    assert n == {False: 0, True: 1}
    # a given index rebuilt at the same path (here without the rotation rows) is a new detector: hashed again
    for rotations, found in ((True, 1), (False, 0)):
        EvalIndex.build({"e": str(eval_dir)}, rotation_variants=rotations).save(str(tmp_path / "ix"))
        run_overlap(OverlapJob([str(tmp_path / "shards")], {"e": str(eval_dir)}, str(out), index_dir=str(tmp_path / "ix")),
                    progress=False)
        assert json.loads((out / "report.json").read_text())["sets"]["e"]["n_overlap"] == found


def test_thread_map_keeps_order_and_honours_omp_num_threads(monkeypatch):
    import threading

    from wit.dedupe.matcher import thread_map

    assert thread_map(lambda x: x * x, list(range(50)), 2) == [x * x for x in range(50)]
    assert thread_map(lambda x: x, [], 2) == []
    main = threading.get_ident()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # Ray's setting for a one-CPU worker: no extra threads
    assert set(thread_map(lambda _: threading.get_ident(), list(range(8)))) == {main}
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    seen = set(thread_map(lambda _: (threading.get_ident(), __import__("time").sleep(0.01))[0], list(range(8))))
    assert main not in seen and 1 <= len(seen) <= 2
