"""kill -9 a download mid-run, rerun the same command: it completes, nothing twice, nothing lost;
then the rest of the chain (filter -> dedupe -> shard) on its output reconciles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb

from tests.unit.test_download import _urls, server  # noqa: F401 - the fixture is used by name
from wit.config import DedupeConfig, FilterConfig
from wit.dedupe.job import run_dedupe
from wit.filter.stage import FilterStage
from wit.io import folders, ledger
from wit.runners import run_stage
from wit.shard.job import write_shards


def test_kill9_then_rerun_completes_exactly_once(tmp_path, server):  # noqa: F811
    (tmp_path / "in").mkdir()
    paths = [f"/img/k{i:03d}.jpg" for i in range(64)]
    _urls(tmp_path / "in", server, paths, parts=8)
    out, led = tmp_path / "dl", tmp_path / "ledger"
    cmd = [sys.executable, "-m", "wit.cli", "download", "--urls", str(tmp_path / "in"), "--out", str(out),
           "--ledger", str(led), "--set", "threads=2", "--set", "image_size=32", "--set", "per_host_concurrency=2",
           "--set", "allow_private_networks=true",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "_markers").glob("*.json"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / "_markers").glob("*.json")))
    assert 2 <= done_before < 8, "the kill should land mid-run"
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    con = duckdb.connect()
    n, distinct = con.execute(f"SELECT count(*), count(DISTINCT uid) FROM '{out}/part-*.parquet'").fetchone()
    assert n == distinct == 64
    checks = ledger.reconcile(str(led), {"download": str(out)})
    assert checks["download"].ok and checks["download"].ledger_rows == 64, checks["download"].problems

    # the rest of the chain on what survived
    filt = tmp_path / "filtered"
    run_stage(FilterStage(cfg=FilterConfig(min_side=16)), folders.expand(str(out), (".parquet",)), str(filt),
              ledger_dir=str(led), progress=False)
    dd = tmp_path / "deduped"
    rep = run_dedupe(folders.expand(str(filt), (".parquet",)), str(dd), None, DedupeConfig(), ledger_dir=str(led),
                     progress=False)
    assert rep["kept"] == 1 and rep["by_reason"] == {"near_duplicate": 63}  # every image is the same picture
    shards = tmp_path / "shards"
    write_shards(folders.expand(str(dd), (".parquet",)), str(shards), 10, ledger_dir=str(led), progress=False)
    chain = ["download", "filter", "dedupe", "shard"]
    checks = ledger.reconcile(str(led), {"download": str(out), "filter": str(filt), "dedupe": str(dd),
                                         "shard": str(shards)}, chain=chain)
    assert all(c.ok for c in checks.values()), {k: c.problems for k, c in checks.items()}
