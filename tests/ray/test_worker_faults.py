"""Worker faults and storage limits on Ray: a killed worker's task is retried; running out of spill
disk stops the step with one line naming it and the limits."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import ROOT
from tests.helpers import make_candidates, small_disk
from tests.stages_for_tests import KeepEvenLength, kill_once
from wit import schemas
from wit.io import folders, ledger

pytestmark = pytest.mark.ray


def test_a_stage_worker_killed_mid_task_gets_its_task_retried(tmp_path, ray_session):
    from wit.runners import run_stage

    inputs = make_candidates(tmp_path / "in", parts=4, rows=30)
    marker = tmp_path / "killed"
    reps = {}
    for runner, stage in (("local", KeepEvenLength()), ("ray", KeepEvenLength(kill_at=2, kill_once=str(marker)))):
        reps[runner] = run_stage(stage, inputs, str(tmp_path / runner), runner=runner,
                                 ledger_dir=str(tmp_path / runner / "ledger"), workers=2, progress=False)
    assert marker.exists(), "the worker running task 2 must have been killed"
    assert reps["ray"].tasks == 4 and reps["ray"].kept == reps["local"].kept > 0
    for i in range(4):
        a, b = (folders.read_parquet([str(tmp_path / r / folders.part_name(i))]) for r in ("local", "ray"))
        assert a.equals(b)
    check = ledger.summarize(str(tmp_path / "ray" / "ledger"))["evenlen"]
    assert check.duplicate_kept == 0 and check.ledger_rows == 120 == check.kept + check.dropped


def _kill_once_then_count(item: tuple[str, str], p: int) -> list[pa.Table]:
    marker, path = item
    kill_once(marker)
    return [pa.table({"rows": [folders.read_parquet([path]).num_rows]})]


def test_a_global_step_task_whose_worker_is_killed_is_retried(tmp_path, ray_session):
    from wit.distributed import shuffle as sh
    from wit.distributed.shuffle import ShuffleConfig

    inputs = make_candidates(tmp_path / "in", parts=3, rows=25)
    markers = [str(tmp_path / f"killed-{i}") for i in range(3)]
    refs = sh.run_tasks("test step", list(zip(markers, inputs)), _kill_once_then_count, ShuffleConfig(attempts=3))
    assert [t.column("rows")[0].as_py() for t in sh.results("test step", refs)] == [25, 25, 25]
    assert all(os.path.exists(m) for m in markers)


@pytest.mark.slow
def test_spill_disk_exhaustion_stops_the_step_with_one_line_naming_it_and_the_limits(tmp_path):
    """`wit match --runner ray` with an 80 MB object store spilling to an 8 MiB disk: the three parts
    hold the same uids, so the uid-duplicate pass finds 3M later duplicates (~150 MB), whose sorted
    blocks come back to the driver through the object store and fill both; the command exits 2 with
    one line. (The shuffle's own pieces go through files in the output folder.)"""
    with small_disk(tmp_path / "spill", "8m") as spill:
        rng = np.random.default_rng(0)
        n = 1_500_000
        uids = pa.array(np.char.mod("%032x", rng.integers(0, 2**62, n)).astype(object), pa.string())
        for p in range(3):
            folders.write_parquet(str(tmp_path / "cand" / f"part-{p:05d}.parquet"), pa.table(
                {"uid": uids, "url": pa.nulls(n, pa.string()), "text": pa.nulls(n, pa.string()),
                 "page_url": pa.nulls(n, pa.string()), "source": pa.nulls(n, pa.string())}, schema=schemas.CANDIDATES))
        folders.write_parquet(str(tmp_path / "q.parquet"), pa.table({"query_id": pa.array([0], pa.int32()),
                                                                     "query": ["red"]}))
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(ROOT),
                                                                              "RAY_USAGE_STATS_ENABLED": "0"}
        proc = subprocess.run([sys.executable, "-m", "wit.cli", "match", "--queries", str(tmp_path / "q.parquet"),
                               "--candidates", str(tmp_path / "cand"), "--out", str(tmp_path / "matched"),
                               "--runner", "ray", "--object-store-memory", "80MB", "--spill-dir", str(spill),
                               "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("wit: error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    line = errors[0]
    assert "match: uid duplicates: Ray ran out of spill disk (OutOfDiskError" in line
    assert "object_store_memory=0.07 GiB" in line and f"spill_dir={spill}" in line and "ray.object_store_memory" in line
