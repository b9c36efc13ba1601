"""Resume: `wit run` on the mini-web spec, SIGKILLed at three points and rerun, ends with the shards of an
uninterrupted run; a changed config recomputes; a second run on the same --out is refused; bad --steps and
other user errors exit 2 in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "pipelines" / "demo.yaml"
UP_TO_SHARD = "world,queries,candidates,match,balance,download,filter,dedupe,balance_final,shard"


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}


def _cmd(run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "wit.cli", "run", str(SPEC), "--out", str(run), "--runner", "local",
            "--steps", UP_TO_SHARD, "--no-progress", *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _new_run(tmp_path: Path, name: str, port: int) -> Path:
    """A run directory whose mini-web is served on ``port``, so that its URLs (and uids) match the others'."""
    run = tmp_path / name
    run.mkdir()
    (run / "server.json").write_text(json.dumps({"port": port}))
    return run


def _run(run: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cmd(run, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _shard_uids(run: Path) -> set[str]:
    uids = set()
    for tar in sorted((run / "shards").glob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".json"):
                    uids.add(json.loads(tf.extractfile(m).read())["uid"])
    return uids


def _kill_when(run: Path, ready, timeout: float = 600) -> bool:
    """Start the run, SIGKILL it once ``ready(run)`` holds; True if it was killed before it ended."""
    proc = subprocess.Popen(_cmd(run), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if ready(run):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.wait()
    return False


def _step_state(run: Path, folder: str) -> str | None:
    rec = run / folder / "_step.json"
    try:
        return json.loads(rec.read_text())["state"]
    except (OSError, ValueError, KeyError):
        return None


def _markers(run: Path, folder: str) -> int:
    return len(list((run / folder / "_markers").glob("part-*.json")))


KILL_POINTS = {
    "after_match": lambda run: _step_state(run, "matched") == "done",
    "during_download": lambda run: _markers(run, "downloaded") >= 1,
    "during_shard": lambda run: (run / "shards").exists(),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run, shared: (its directory, its port, the uids of its shards, which every
    resumed run must end with). The uids are read here, so a test may go on from the run directory."""
    port = _free_port()
    ref = _new_run(tmp_path_factory.mktemp("resume"), "reference", port)
    _run(ref)
    return ref, port, _shard_uids(ref)


@pytest.mark.slow
def test_killed_runs_resume_to_the_shards_of_an_uninterrupted_run(reference, tmp_path):
    _, port, expected = reference
    assert len(expected) > 100
    # One run directory killed at each point in turn: each start resumes what the kill before left
    # (a stale lock, half-written parts), runs on to the next point and is killed there again.
    run = _new_run(tmp_path, "killed", port)
    killed = {}
    for point, ready in KILL_POINTS.items():
        killed[point] = _kill_when(run, ready)
        assert not (run / ".lock").exists() or killed[point]  # a SIGKILLed run leaves its lock behind
    _run(run)  # the stale lock of the dead pid is taken over
    assert _shard_uids(run) == expected
    record = json.loads((run / "run.json").read_text())
    assert record["ledger_ok"], record["ledger"]
    # A kill is seen at least where the pipeline spends seconds (the shard step may end first).
    assert killed["after_match"] and killed["during_download"], killed


@pytest.mark.slow
def test_changed_config_recomputes_the_step_and_what_follows(reference):
    run = reference[0]  # goes on from the finished run (its config names files inside it, so it cannot be copied)
    before = json.loads((run / "run.json").read_text())["stages"]
    candidates_record = (run / "candidates" / "_step.json").read_text()
    _run(run, "--set", "balance.t=5", "--set", "balance_final.t=5")
    after = json.loads((run / "run.json").read_text())
    assert after["config"]["balance"]["t"] == 5
    assert after["stages"]["candidates"].get("skipped") and (run / "candidates" / "_step.json").read_text() == candidates_record
    assert after["stages"]["balance"]["kept"] < before["balance"]["kept"]
    assert after["stages"]["shard"]["kept"] < before["shard"]["kept"]
    assert after["stages"]["shard"]["kept"] == len(_shard_uids(run))
    assert after["ledger_ok"], after["ledger"]
