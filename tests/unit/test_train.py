"""Training end to end on rendered shape shards: the loss falls, outputs load, resume continues."""

from __future__ import annotations

import json
from dataclasses import replace

import open_clip
import pytest
import torch

from wit.train import synthetic
from wit.train.job import train
from wit.train.loop import TrainJob, train_worker


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    shards = synthetic.write_shards(root / "shards", n_shards=2, per_shard=96, size=40)
    synthetic.write_imagefolder(root / "eval", per_class=6, size=40)
    return {"shards": tuple(shards), "eval": str(root / "eval"), "root": root}


def _job(data, out, **kw) -> TrainJob:
    base = dict(model="wit-vit-micro", steps=40, batch_size=32, lr=2e-3, warmup=4, loader_workers=1,
                shuffle_buffer=64, log_every=4, checkpoint_every=10)
    return TrainJob(data["shards"], str(out), **{**base, **kw})


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_short_run_lowers_the_loss_and_writes_loadable_outputs(data, tmp_path):
    out = tmp_path / "run"
    summary = train(_job(data, out, eval_sets={"shapes": data["eval"]}))
    rows = _metrics(out)
    assert [r["step"] for r in rows] == list(range(4, 41, 4))
    first, last = rows[0]["loss"], sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.5, f"loss did not fall: {first} -> {last}"
    assert {"lr", "temperature", "samples_per_s", "bad_samples"} <= set(rows[0])
    assert rows[-1]["temperature"] == pytest.approx(1 / rows[-1]["logit_scale"], rel=1e-3)

    assert summary["steps"] == 40 and summary["device"] == "cpu"
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    zs = json.loads((out / "zeroshot.json").read_text())
    assert zs["shapes"]["n"] == 36 and zs["shapes"]["classes"][0] == "blue circle"
    preds = [json.loads(line) for line in (out / "zeroshot_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 36 and all(p["set"] == "shapes" for p in preds)

    # open_clip itself loads the checkpoint, and it holds the trained weights.
    ckpt = out / "checkpoints" / "epoch_latest.pt"
    model = open_clip.create_model("wit-vit-micro", pretrained=str(ckpt))
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == 40
    torch.testing.assert_close(model.state_dict()["visual.conv1.weight"], saved["state_dict"]["visual.conv1.weight"])
    assert not torch.equal(model.visual.conv1.weight, open_clip.create_model("wit-vit-micro").visual.conv1.weight)


def test_resumed_run_continues_at_the_checkpointed_step(data, tmp_path):
    out = tmp_path / "run"
    job = _job(data, out, steps=16, checkpoint_every=4, log_every=2, loader_workers=0)
    first = train_worker(replace(job, stop_after=9))
    assert first["steps"] == 9
    ckpt = torch.load(out / "checkpoints" / "epoch_latest.pt", weights_only=True)
    assert ckpt["step"] == 9 and ckpt["data"]["cursors"] == [[9 * 32]]

    with pytest.raises(ValueError, match="--resume"):
        train_worker(job)
    # Lines logged after the checkpoint would repeat; pretend the run died after logging step 10.
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 10, "loss": 0.0}) + "\n")
    second = train_worker(replace(job, resume=True))
    assert second["start_step"] == 9 and second["steps"] == 16
    steps = [r["step"] for r in _metrics(out)]
    assert steps == [2, 4, 6, 8, 9, 10, 12, 14, 16]
    assert torch.load(out / "checkpoints" / "epoch_latest.pt", weights_only=True)["data"]["cursors"] == [[16 * 32]]


def test_bf16_autocast_trains_on_cpu_and_fp16_needs_cuda(data, tmp_path):
    """The mixed-precision path (autocast + loss in fp32) runs a few real steps; on CUDA it is the default."""
    summary = train_worker(_job(data, tmp_path / "bf16", steps=3, batch_size=16, loader_workers=0, precision="bf16",
                                device="cpu", log_every=1))
    assert summary["amp"] == "torch.bfloat16" and summary["steps"] == 3
    losses = [r["loss"] for r in _metrics(tmp_path / "bf16")]
    assert len(losses) == 3 and all(0 < loss < 10 for loss in losses)
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        train_worker(_job(data, tmp_path / "fp16", steps=1, loader_workers=0, precision="fp16", device="cpu"))


def test_wit_train_cli(data, tmp_path, shared_data):
    from wit.cli import main

    out = tmp_path / "cli"
    rc = main(["train", "--shards", str(data["root"] / "shards"), "--out", str(out), "--model", "wit-vit-micro",
               "--steps", "4", "--batch-size", "16", "--loader-workers", "0", "--eval", f"shapes={data['eval']}",
               "--templates", str(shared_data / "eval_meta" / "en_zeroshot_classification_templates.json")])
    assert rc == 0
    assert torch.load(out / "checkpoints" / "epoch_latest.pt", weights_only=True)["step"] == 4
    assert json.loads((out / "zeroshot.json").read_text())["shapes"]["n"] == 36
    assert main(["train", "--shards", str(data["root"] / "shards"), "--out", str(out), "--model", "wit-vit-micro",
                 "--steps", "4"]) == 2  # exists without --resume


# One colour per class, so the micro model (32 px) separates them within the test's budget.
DISTINCT = [("red", "circle"), ("green", "square"), ("blue", "triangle"),
            ("yellow", "circle"), ("purple", "square"), ("orange", "triangle")]


@pytest.mark.slow
def test_zero_shot_accuracy_well_above_chance_after_training(tmp_path):
    shards = synthetic.write_shards(tmp_path / "shards", n_shards=2, per_shard=128, size=40, classes=DISTINCT)
    synthetic.write_imagefolder(tmp_path / "eval", per_class=10, size=40, classes=DISTINCT)
    data = {"shards": tuple(shards)}
    summary = train(_job(data, tmp_path / "zs", steps=150, warmup=10, log_every=25, checkpoint_every=150,
                         eval_sets={"shapes": str(tmp_path / "eval")}))
    res = summary["zeroshot"]["shapes"]
    assert res["chance"] == pytest.approx(1 / 6)
    assert res["top1"] >= 0.6, res


def test_pipeline_step_trains_on_run_shards_and_world_eval_sets(data, tmp_path):
    import shutil

    from wit.config import RunSpec, TrainConfig
    from wit.pipeline import RunContext
    from wit.train.step import run_step

    spec = RunSpec(train=TrainConfig(model="wit-vit-micro", steps=4, batch_size=16, warmup=1, workers=0,
                                     eval={"shapes": str(data["eval"])}))
    ctx = RunContext(spec, str(tmp_path / "run"), progress=False).for_step("train")
    shutil.copytree(data["root"] / "shards", ctx.inputs[0])
    result = run_step(ctx)
    assert result["steps"] == 4 and result["final_loss"] > 0
    assert set(result["zeroshot_top1"]) == {"shapes"}
    # A rerun (e.g. after a crash late in the pipeline) resumes: nothing left to train, same answer.
    again = run_step(ctx)
    assert again["steps"] == 4 and again["final_loss"] == pytest.approx(result["final_loss"], abs=1e-4)


def test_run_without_eval_sets_warns_and_lists_the_skipped_analyses(data, tmp_path, caplog):
    import shutil

    from wit.config import RunSpec, TrainConfig
    from wit.pipeline import RunContext, run_pipeline

    spec = RunSpec(steps=["train", "overlap"],
                   train=TrainConfig(model="wit-vit-micro", steps=2, batch_size=16, warmup=1, workers=0))
    ctx = RunContext(spec, str(tmp_path / "run"), progress=False)
    shutil.copytree(data["root"] / "shards", ctx.folder("shard"))
    with caplog.at_level("WARNING"):
        record = run_pipeline(ctx)
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["skipped"] == record["skipped"] == {
        "train": {"zeroshot": "no eval sets: zero-shot evaluation uses the world step's, and the run has none"},
        "overlap": {"overlap": "no eval sets: overlap.eval is empty and the run has no world step"},
    }
    assert record["stages"]["train"]["zeroshot_top1"] == {} and record["stages"]["train"]["steps"] == 2
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("zero-shot evaluation SKIPPED" in m for m in warned) and any("overlap: SKIPPED" in m for m in warned)
