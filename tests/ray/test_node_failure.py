"""A worker node removed mid-stage: the stage finishes with the same output and the ledger reconciles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_match_survives_losing_a_worker_node(tmp_path):
    pytest.importorskip("ray")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-m", "tests.ray.node_failure", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    r = json.loads(line[-1][len("RESULT "):])
    assert r["error"] is None
    assert 0 <= r["tasks_done_before_removal"] < r["tasks"], "the node must go while the stage runs"
    assert r["alive_nodes_after"] == 2
    assert r["same_output"] and r["ledger_ok"]
    assert r["rows"] == r["distinct_uids"] > 0
