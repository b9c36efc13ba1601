"""The overlap detector and analysis on real photos: planted perturbed copies among distractors."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pyarrow as pa
import pytest

from wit.imagehash.descriptors import describe_bytes
from wit.io import folders
from wit.overlap.job import OverlapJob, run_overlap
from wit.overlap.detector import DEFAULT_THRESHOLD, TrainHashStage, TrainIndex, calibrate, perturb
from wit.runners import run_stage

N_EVAL, N_PLANTED, N_DISTRACT = 30, 10, 90


def _jpeg(img, q=90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=q)
    return buf.getvalue()


def _photos(shared_data, n):
    from PIL import Image

    paths = sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))[:n]
    out = []
    for p in paths:
        im = Image.open(p)
        im.thumbnail((160, 160))
        out.append((p.stem.split("_", 1)[1], im.convert("RGB")))
    return out


@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory):
    """eval/ (ImageFolder, one photo per class), shards/ with copies of the first N_PLANTED eval photos."""
    import webdataset as wds

    root = tmp_path_factory.mktemp("overlap")
    photos = _photos(shared_data, N_EVAL + N_DISTRACT)
    for name, im in photos[:N_EVAL]:
        (root / "eval" / name).mkdir(parents=True)
        im.save(root / "eval" / name / "0000.png")
    (root / "planted.json").write_text(json.dumps([f"{name}/0000.png" for name, _ in photos[:N_PLANTED]]))
    rng = random.Random(1)
    samples = [(f"copy{i:03d}", _jpeg(perturb(im, rng))) for i, (_, im) in enumerate(photos[:N_PLANTED])]
    samples += [(f"other{i:03d}", _jpeg(im)) for i, (_, im) in enumerate(photos[N_EVAL:])]
    random.Random(2).shuffle(samples)
    (root / "shards").mkdir()
    half = len(samples) // 2
    for s, chunk in enumerate([samples[:half], samples[half:]]):
        tar = root / "shards" / f"{s:05d}.tar"
        with wds.TarWriter(str(tar)) as sink:
            for key, data in chunk:
                sink.write({"__key__": key, "jpg": data, "txt": f"caption {key}", "json": json.dumps({"uid": "u" + key})})
            if s == 1:  # another tool's shard: a broken image and a sample with no image
                sink.write({"__key__": "broken", "jpg": b"not a jpeg", "txt": "x"})
                sink.write({"__key__": "textonly", "txt": "no image here"})
        if s == 0:  # wit's own shards carry the pHash in the Parquet beside the tar
            folders.write_parquet(str(tar).replace(".tar", ".parquet"), pa.table({
                "key": [k for k, _ in chunk], "uid": ["u" + k for k, _ in chunk],
                "phash": pa.array([describe_bytes(d)[1] for _, d in chunk], pa.uint64())}))
    return root


def test_hash_stage_accounts_for_every_sample(planted, tmp_path):
    tars = folders.expand(str(planted / "shards"), (".tar",))
    rep = run_stage(TrainHashStage(), tars, str(tmp_path / "h"), progress=False)
    assert rep.n_in == N_PLANTED + N_DISTRACT + 2
    assert rep.kept == N_PLANTED + N_DISTRACT
    assert rep.by_reason == {"decode_failed": 1, "no_image": 1}
    side = folders.read_parquet(str(tmp_path / "h"))
    rep2 = run_stage(TrainHashStage(use_sidecar=False), tars, str(tmp_path / "d"), progress=False)
    decoded = folders.read_parquet(str(tmp_path / "d"))
    assert rep2.kept == rep.kept
    # The Parquet fast path and decoding the tar give the same hashes and uids.
    a = sorted(zip(side.column("key").to_pylist(), side.column("uid").to_pylist(), side.column("phash").to_pylist()))
    b = sorted(zip(decoded.column("key").to_pylist(), decoded.column("uid").to_pylist(),
                   decoded.column("phash").to_pylist()))
    assert a == b


def test_train_index_search_is_exact_across_parts_and_chunks():
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 2**63, size=n, dtype=np.uint64) for n in (700, 1, 333)]
    queries = np.concatenate([rng.integers(0, 2**63, size=50, dtype=np.uint64), blocks[2][:5] ^ np.uint64(0b1011)])
    index = TrainIndex(chunk=64, query_batch=7)
    for i, b in enumerate(blocks):
        index.add(b, f"part{i}")
    near = index.search(queries)
    every = np.concatenate(blocks)
    d = np.array([[bin(int(q) ^ int(t)).count("1") for t in every] for q in queries])
    assert (near.distance == d.min(axis=1)).all()
    offsets = np.cumsum([0] + [len(b) for b in blocks])
    assert (offsets[near.part] + near.row == d.argmin(axis=1)).all()  # ties go to the earliest
    assert (near.distance[-5:] == 3).all() and (near.part[-5:] == 2).all()
    assert (TrainIndex().search(queries).distance == 65).all()


def test_planted_copies_are_found_as_overlap(planted, tmp_path):
    out = tmp_path / "report"
    summary = run_overlap(OverlapJob([str(planted / "shards")], {"photos": str(planted / "eval")}, str(out)),
                          progress=False)
    items = folders.read_parquet(str(out / "items.parquet")).to_pylist()
    assert len(items) == N_EVAL
    planted_items = set(json.loads((planted / "planted.json").read_text()))
    found = {it["item"] for it in items if it["overlap"]}
    tp = len(found & planted_items)
    precision, recall = tp / max(1, len(found)), tp / N_PLANTED
    print(f"planted copies: precision {precision:.2f} recall {recall:.2f}")
    assert precision == 1.0 and recall >= 0.9, (precision, recall)
    assert summary["contamination"]["photos"] == pytest.approx(len(found) / N_EVAL)
    doc = json.loads((out / "report.json").read_text())
    s = doc["sets"]["photos"]
    assert s["n_overlap"] == len(found) and s["n_all"] == N_EVAL and s["acc_all"] is None
    assert doc["meta"]["train_images"] == N_PLANTED + N_DISTRACT
    # The closest pairs in the HTML are the planted copies, with both thumbnails embedded.
    closest = [p for p in s["pairs"] if p["why"] == "closest"]
    assert closest and all(p["train_key"].startswith("copy") for p in closest)
    html = (out / "report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 2 * len(s["pairs"])
    assert "| photos |" in (out / "report.md").read_text()
    for png in ("contamination.png", "accuracy_difference.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_default_threshold_separates_copies_from_distinct_photos(shared_data):
    cal = calibrate([im for _, im in _photos(shared_data, 80)], seed=3)
    tpr, fpr = cal.rates(DEFAULT_THRESHOLD)
    assert tpr >= 0.95 and fpr == 0.0, (tpr, fpr, cal.threshold)
    assert abs(cal.threshold - DEFAULT_THRESHOLD) <= 4
    assert all(d % 2 == 0 for d in cal.copy_distances + cal.distractor_distances)  # 32 bits set per hash


def test_cli_threshold_override_and_errors(planted, tmp_path):
    from wit.cli import main

    out = tmp_path / "cli"
    args = ["overlap", "--shards", str(planted / "shards"), "--eval", f"photos={planted / 'eval'}", "--out", str(out),
            "--no-progress"]
    assert main(args + ["--threshold", "photos=0"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["sets"]["photos"]["threshold"] == 0
    # At 0 bits only copies whose hash did not change at all are counted.
    items = folders.read_parquet(str(out / "items.parquet")).to_pylist()
    assert doc["sets"]["photos"]["n_overlap"] == sum(it["distance"] == 0 for it in items) < N_PLANTED
    assert main(args + ["--threshold", "nosuchset=3"]) == 2
    assert main(args + ["--threshold", "photos"]) == 2


@pytest.mark.slow  # torch + open_clip import and two CPU evaluations: ~25 s on a shared machine
def test_zero_shot_on_the_splits(planted, tmp_path):
    torch = pytest.importorskip("torch")
    from wit.train import model as wit_model
    from wit.train import zeroshot

    ckpt = tmp_path / "micro.pt"
    torch.manual_seed(0)
    torch.save(wit_model.create("wit-vit-micro").model.state_dict(), ckpt)
    out = tmp_path / "withmodel"
    run_overlap(OverlapJob([str(planted / "shards")], {"photos": str(planted / "eval")}, str(out),
                           model=str(ckpt), model_name="wit-vit-micro"), progress=False)
    s = json.loads((out / "report.json").read_text())["sets"]["photos"]
    items = folders.read_parquet(str(out / "items.parquet")).to_pylist()
    m, pre, tok = zeroshot.load_model(str(ckpt), "wit-vit-micro")
    ref = zeroshot.evaluate_imagefolder(m, pre, tok, planted / "eval")
    assert s["acc_all"] == pytest.approx(ref["top1"])
    ov = [it["correct"] for it in items if it["overlap"]]
    cl = [it["correct"] for it in items if not it["overlap"]]
    assert s["acc_overlap"] == pytest.approx(np.mean(ov)) and s["acc_clean"] == pytest.approx(np.mean(cl))
    assert s["p_value"] is not None and 0 <= s["ci_low"] <= s["acc_overlap"] <= s["ci_high"] <= 1
    assert s["model_note"] == ""


def test_pipeline_step_reads_the_run_directory(planted, tmp_path):
    import shutil

    from wit.config import OverlapConfig, RunSpec
    from wit.overlap.step import run_step
    from wit.pipeline import RunContext

    run = tmp_path / "run"
    shutil.copytree(planted / "shards", run / "shards")
    spec = RunSpec(steps=["overlap"], overlap=OverlapConfig(eval={"photos": str(planted / "eval")}, pairs=2))
    result = run_step(RunContext(spec, str(run), progress=False).for_step("overlap"))
    doc = json.loads((run / "overlap" / "report.json").read_text())
    assert result["contamination"] == {"photos": doc["sets"]["photos"]["contamination"]} and result["train_images"] == 100
    assert doc["meta"]["model"] is None and len(doc["sets"]["photos"]["pairs"]) == 4
    assert result["skipped"]["overlap_accuracy"].startswith("no trained checkpoint at ")
    assert not (run / "ledger").exists()  # the analysis decides no candidate's fate
