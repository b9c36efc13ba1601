"""Ray Train: two CPU workers (gloo) train one model on disjoint halves of the shards."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from wit.train import synthetic
from wit.train.job import train
from wit.train.loop import TrainJob


@pytest.mark.ray
@pytest.mark.slow
def test_two_worker_ray_train_run(ray_session, tmp_path):
    shards = synthetic.write_shards(tmp_path / "shards", n_shards=2, per_shard=32, size=36)
    job = TrainJob(tuple(shards), str(tmp_path / "out"), model="wit-vit-micro", steps=6, batch_size=8, warmup=2,
                   loader_workers=0, shuffle_buffer=8, log_every=2, checkpoint_every=3)
    summary = train(job, ray_workers=2)
    assert summary["world_size"] == 2 and summary["steps"] == 6
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    ckpt = torch.load(tmp_path / "out" / "checkpoints" / "epoch_latest.pt", weights_only=True)
    # One cursor list per rank: each rank read its own 6 batches of 8.
    assert ckpt["data"]["world_size"] == 2 and ckpt["data"]["cursors"] == [[48], [48]]
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    open_clip.create_model("wit-vit-micro", pretrained=str(tmp_path / "out" / "checkpoints" / "epoch_latest.pt"))
