"""open_clip's own trainer (``python -m open_clip_train.main``) trains on wit's shards with the locked
packages, and wit's small configs reach it as ``--model local-dir:DIR``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.helpers import make_final
from wit.shard.job import write_shards
from wit.train.open_clip_dir import export


@pytest.mark.slow
def test_open_clip_train_on_wit_shards(tmp_path):
    pytest.importorskip("open_clip_train")
    write_shards(make_final(tmp_path, n=8), str(tmp_path / "shards"), 4, ledger_dir=str(tmp_path / "ledger"),
                 progress=False)
    model = export("wit-vit-tiny", tmp_path / "model")
    cmd = [sys.executable, "-m", "open_clip_train.main", "--dataset-type", "webdataset",
           "--train-data", str(tmp_path / "shards" / "{00000..00001}.tar"), "--train-num-samples", "8",
           "--batch-size", "4", "--epochs", "1", "--workers", "0", "--model", f"local-dir:{model}",
           "--precision", "fp32", "--logs", str(tmp_path / "logs"), "--name", "wit", "--save-frequency", "1",
           "--report-to", "", "--warmup", "0", "--lr", "1e-4", "--seed", "0", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "KeyError" not in res.stderr and "Train Epoch: 0 [8/8 (100%)]" in res.stderr, res.stderr[-3000:]
    assert (tmp_path / "logs" / "wit" / "checkpoints" / "epoch_1.pt").stat().st_size > 1_000_000
