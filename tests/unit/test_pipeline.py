"""The step graph and `wit run`'s resume rules on a one-step spec (candidates from a CSV URL list)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wit import graph
from wit.cli import main
from wit.config import RunSpec, load_yaml
from wit.pipeline import RunContext, run_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec_file(tmp_path) -> Path:
    csv = tmp_path / "urls.csv"
    csv.write_text("url,text\n" + "".join(f"http://example.com/{i}.jpg,a photo of thing {i}\n" for i in range(20)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"steps: [candidates]\ncandidates:\n  format: csv\n  inputs: [{csv}]\n")
    return spec


def _run(spec_file: Path, out: Path, overrides: dict | None = None) -> dict:
    return run_pipeline(RunContext(load_yaml(spec_file, RunSpec, overrides), str(out), progress=False))


def test_graph_is_the_one_source_of_names_folders_and_chain():
    from wit import cli
    from wit.config import STEP_NAMES

    assert STEP_NAMES == graph.NAMES
    assert graph.LEDGER_CHAIN == ("candidates", "match", "balance", "download", "filter", "dedupe",
                                  "balance_final", "shard")
    assert {s.folder for s in graph.STEPS} >= {"matched", "balanced", "downloaded", "filtered", "deduped", "final",
                                               "shards"}
    names = [c[0] for c in cli.commands()]
    assert names[:3] == ["world", "queries", "candidates"] and "balance_final" not in names and "run" in names
    for s in graph.STEPS:  # every upstream is declared before its step, and every run function loads
        assert all(graph.NAMES.index(u) < graph.NAMES.index(s.name) for u in s.upstream)
        assert callable(s.load())
    assert graph.downstream({"dedupe"}) == {"dedupe", "balance_final", "shard", "train", "overlap"}


def test_rerun_skips_a_done_step_and_recomputes_a_changed_one(spec_file, tmp_path):
    out = tmp_path / "run"
    first = _run(spec_file, out)
    assert first["stages"]["candidates"]["kept"] == 20 and first["ledger_ok"]
    again = _run(spec_file, out)
    assert again["stages"]["candidates"]["skipped"]
    # A changed config value recomputes the step (the old output is removed, not reused).
    changed = _run(spec_file, out, {"candidates.max_text_chars": 18})
    assert not changed["stages"]["candidates"].get("skipped")
    assert changed["stages"]["candidates"]["kept"] < 20 and changed["ledger_ok"]
    # So does a changed input file named by the config.
    csv = tmp_path / "urls.csv"
    csv.write_text(csv.read_text() + "http://example.com/x.jpg,one more photo\n")
    grown = _run(spec_file, out)
    assert grown["stages"]["candidates"]["kept"] == 21 and grown["ledger_ok"]
    assert not (out / ".lock").exists()


def test_a_second_run_on_the_same_out_is_refused_and_a_dead_runs_lock_taken_over(spec_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    lock = out / ".lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # a live process holds it
    assert main(["run", str(spec_file), "--out", str(out), "--runner", "local"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {os.getpid()}" in err and str(out) in err
    assert not (out / "candidates").exists() and lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    assert main(["run", str(spec_file), "--out", str(out), "--runner", "local", "--no-progress"]) == 0
    assert not lock.exists() and (out / "candidates" / "_step.json").exists()


def test_steps_are_checked_before_any_work(spec_file, tmp_path, capsys):
    t0 = time.perf_counter()
    assert main(["run", str(spec_file), "--out", str(tmp_path / "run"), "--steps", "candidates,bogus"]) == 2
    err = capsys.readouterr().err
    assert "--steps" in err and "bogus" in err and err.count("\n") == 1
    assert main(["run", str(spec_file), "--out", str(tmp_path / "run"), "--steps", "match"]) == 2
    assert "not in the spec's steps" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and time.perf_counter() - t0 < 5


def _fails(argv: list[str], capsys, *names: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("wit: error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, (name, err)


def test_user_errors_are_one_line_exit_2_and_debug_shows_the_traceback(tmp_path, spec_file, capsys, monkeypatch):
    missing = tmp_path / "nope.yaml"
    _fails(["run", str(missing), "--out", str(tmp_path / "run")], capsys, str(missing))
    bad = tmp_path / "bad.yaml"
    bad.write_text("balance:\n  t: 0\n  tt: 5\n")
    _fails(["run", str(bad), "--out", str(tmp_path / "run")], capsys, str(bad), "balance.tt")
    _fails(["run", str(spec_file), "--out", str(tmp_path / "run"), "--set", "balance.t"], capsys, "--set")
    _fails(["filter", "--input", str(tmp_path / "absent"), "--out", str(tmp_path / "f")], capsys,
           str(tmp_path / "absent"))
    _fails(["overlap", "--shards", str(tmp_path), "--eval", "x", "--out", str(tmp_path / "o")], capsys, "--eval")
    _fails(["filter", "--input", str(tmp_path), "--out", str(tmp_path / "f"), "--config", str(missing)], capsys,
           "--config", str(missing))
    from wit.config import ConfigError

    with pytest.raises(ConfigError):
        main(["run", str(missing), "--out", str(tmp_path / "run"), "--debug"])
    monkeypatch.setenv("WIT_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(["run", str(missing), "--out", str(tmp_path / "run")])
