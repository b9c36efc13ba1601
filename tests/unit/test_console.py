"""Console: one bar per stage with rows/s, -q, --log-file, --version, no update check; Ray's lines in RUN/logs."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT


def _wit(args: list[str], **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "NO_ALBUMENTATIONS_UPDATE")}
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.run([sys.executable, "-m", "wit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def _urls(tmp_path, n=40) -> str:
    path = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": [f"http://img.test/{i}.jpg" for i in range(n)],
                             "text": [f"a photo of thing {i}" for i in range(n)]}), path)
    return str(path)


def test_version():
    res = _wit(["--version"])
    assert res.returncode == 0 and res.stdout.strip().startswith("wit ")


def test_stage_bar_quiet_and_log_file(tmp_path):
    args = ["candidates", "extract", "--input", _urls(tmp_path), "--format", "parquet"]
    res = _wit([*args, "--out", str(tmp_path / "run" / "candidates")])
    assert res.returncode == 0, res.stderr
    assert "candidates: 1/1 tasks" in res.stderr and "40 rows" in res.stderr and "rows/s" in res.stderr
    assert "albumentations" not in res.stderr.lower()
    log = tmp_path / "wit.log"
    res = _wit(["-q", "--log-file", str(log), *args, "--out", str(tmp_path / "run2" / "candidates")])
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert "INFO" in log.read_text()


def test_albumentations_update_check_off():
    code = "import wit, os; print(os.environ.get('NO_ALBUMENTATIONS_UPDATE'))"
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=60).stdout
    assert out.strip() == "1"


@pytest.mark.ray
@pytest.mark.slow
def test_ray_stage_is_quiet(tmp_path):
    out = tmp_path / "run" / "candidates"
    res = _wit(["candidates", "extract", "--input", _urls(tmp_path), "--format", "parquet", "--out", str(out),
                "--runner", "ray", "--workers", "1"], RAY_USAGE_STATS_ENABLED="0")
    assert res.returncode == 0, res.stderr[-3000:]
    for noise in ("logging_progress", "Token authentication", "constructor arguments", "Running Dataset",
                  "execution finished", "Deprecation"):
        assert noise not in res.stderr, (noise, res.stderr[-3000:])
    assert "rows/s" in res.stderr
    assert (tmp_path / "run" / "logs" / "ray.log").exists()
