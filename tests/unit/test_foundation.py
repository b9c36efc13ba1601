"""Runners, IO, ledger and config: the foundation every stage stands on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import make_candidates
from tests.stages_for_tests import KeepEvenLength, UpperText
from wit import config
from wit.io import folders, ledger
from wit.runners import run_stage

ROOT = Path(__file__).resolve().parents[2]


def read_folder(out: Path):
    return folders.read_parquet(str(out)).sort_by("uid")


def test_local_runner_accounts_for_every_row(tmp_path):
    inputs = make_candidates(tmp_path / "in", parts=3, rows=40)
    rep = run_stage(KeepEvenLength(), inputs, str(tmp_path / "out"), ledger_dir=str(tmp_path / "ledger"), progress=False)
    assert rep.tasks == 3 and rep.n_in == 120
    assert rep.kept + rep.dropped == 120
    assert rep.kept > 0 and rep.by_reason == {"odd_length": rep.dropped}
    out = read_folder(tmp_path / "out")
    assert out.num_rows == rep.kept
    assert all(len(t) % 2 == 0 for t in out["text"].to_pylist())
    checks = ledger.reconcile(str(tmp_path / "ledger"), {"evenlen": str(tmp_path / "out")})
    assert checks["evenlen"].ok, checks["evenlen"].problems
    assert checks["evenlen"].ledger_rows == 120


def test_rerun_skips_finished_tasks(tmp_path):
    inputs = make_candidates(tmp_path / "in", parts=3)
    out = str(tmp_path / "out")
    first = run_stage(KeepEvenLength(), inputs, out, ledger_dir=str(tmp_path / "l"), progress=False)
    before = {p: os.path.getmtime(p) for p in folders.expand(out, (".parquet",))}
    second = run_stage(KeepEvenLength(), inputs, out, ledger_dir=str(tmp_path / "l"), progress=False)
    assert second.skipped == 3 and second.kept == first.kept
    assert before == {p: os.path.getmtime(p) for p in folders.expand(out, (".parquet",))}


def test_atomic_write_leaves_no_temp_files(tmp_path):
    folders.write_json(str(tmp_path / "a" / "x.json"), {"k": 1})
    assert folders.read_json(str(tmp_path / "a" / "x.json")) == {"k": 1}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.json"]


def test_parquet_parts_store_images_as_they_are(tmp_path):
    """The image column is written without compression or dictionary (JPEG bytes do not shrink);
    every other column, nested ones included, is zstd; the rows read back unchanged."""
    import pyarrow as pa

    t = pa.table({"uid": ["a", "b"], "query_ids": [[1, 2], [3]], "jpg": [b"\xff\xd8" * 50, b"\xff\xd9" * 70]})
    folders.write_parquet(str(tmp_path / "p.parquet"), t)
    rg = pq.ParquetFile(tmp_path / "p.parquet").metadata.row_group(0)
    cols = {rg.column(i).path_in_schema: rg.column(i) for i in range(rg.num_columns)}
    assert cols["jpg"].compression == "UNCOMPRESSED" and "RLE_DICTIONARY" not in cols["jpg"].encodings
    assert cols["uid"].compression == cols["query_ids.list.element"].compression == "ZSTD"
    assert folders.read_parquet(str(tmp_path / "p.parquet")).equals(t)
    folders.write_parquet(str(tmp_path / "q.parquet"), t.drop(["jpg"]))
    assert pq.ParquetFile(tmp_path / "q.parquet").metadata.row_group(0).column(1).compression == "ZSTD"


def test_retuning_speed_only_fields_keeps_a_steps_fingerprint():
    """download's threads/processes/decode_threads are left out of the config the fingerprint hashes;
    anything that changes what is written stays in."""
    from wit.resume import config_doc

    base = config_doc(config.DownloadConfig())
    assert config_doc(config.DownloadConfig(threads=64, processes=4, decode_threads=3)) == base
    assert "threads" not in base and "decode_threads" not in base
    assert config_doc(config.DownloadConfig(image_size=384)) != base
    assert config_doc(config.FilterConfig(min_side=8)) != config_doc(config.FilterConfig())
    assert config_doc(None) is None


def test_reconcile_detects_a_lost_row(tmp_path):
    inputs = make_candidates(tmp_path / "in", parts=2)
    out, led = tmp_path / "out", tmp_path / "ledger"
    run_stage(KeepEvenLength(), inputs, str(out), ledger_dir=str(led), progress=False)
    part = out / "part-00000.parquet"
    t = pq.read_table(part)
    pq.write_table(t.slice(1), part)  # a row vanishes from the output
    checks = ledger.reconcile(str(led), {"evenlen": str(out)})
    assert not checks["evenlen"].ok
    assert any("output rows" in p for p in checks["evenlen"].problems)


def test_reconcile_checks_the_chain(tmp_path):
    inputs = make_candidates(tmp_path / "in", parts=2)
    a, b, led = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "ledger")
    run_stage(KeepEvenLength(), inputs, a, ledger_dir=led, progress=False)
    run_stage(UpperText(), folders.expand(a, (".parquet",)), b, ledger_dir=led, progress=False)
    checks = ledger.reconcile(led, {"evenlen": a, "upper": b}, chain=["evenlen", "upper"])
    assert all(c.ok for c in checks.values()), {k: c.problems for k, c in checks.items()}
    assert checks["upper"].ledger_rows == checks["evenlen"].kept
    # Break the chain: the second stage misses one input part.
    os.remove(os.path.join(led, "upper-00001.parquet"))
    checks = ledger.reconcile(led, {"evenlen": a, "upper": b}, chain=["evenlen", "upper"])
    assert not checks["upper"].ok


def test_stage_that_loses_rows_fails_loudly(tmp_path):
    from dataclasses import dataclass

    from wit.stage import BatchResult

    @dataclass
    class Lossy(KeepEvenLength):
        def process_batch(self, batch):
            return BatchResult(kept=batch.slice(1))

    inputs = make_candidates(tmp_path / "in", parts=1)
    with pytest.raises(RuntimeError, match="account for every row"):
        run_stage(Lossy(), inputs, str(tmp_path / "out"), progress=False)


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    inputs = make_candidates(tmp_path / "in", parts=6, rows=30)
    out, led = tmp_path / "out", tmp_path / "ledger"
    script = (
        "import sys, json; from tests.stages_for_tests import KeepEvenLength; from wit.runners import run_stage;"
        f"run_stage(KeepEvenLength(), json.loads(sys.argv[1]), {str(out)!r}, ledger_dir={str(led)!r}, progress=False)"
    )
    env = {**os.environ, "WIT_TEST_CRASH_AT_TASK": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(inputs)], env=env, cwd=ROOT)
    assert proc.returncode == 9  # died in task 3
    assert len(folders.read_markers(str(out))) == 3
    env.pop("WIT_TEST_CRASH_AT_TASK")
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(inputs)], env=env, cwd=ROOT)
    assert proc.returncode == 0
    resumed = read_folder(out)
    clean_out = tmp_path / "clean"
    run_stage(KeepEvenLength(), inputs, str(clean_out), ledger_dir=str(tmp_path / "l2"), progress=False)
    assert resumed.equals(read_folder(clean_out))
    assert len(set(resumed["uid"].to_pylist())) == resumed.num_rows
    checks = ledger.reconcile(str(led), {"evenlen": str(out)})
    assert checks["evenlen"].ok and checks["evenlen"].ledger_rows == 180


def test_config_rejects_unknown_key_and_bad_value(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("balance:\n  t: 0\n  tt: 5\n")
    with pytest.raises(config.ConfigError) as err:
        config.load_yaml(spec)
    msg = str(err.value)
    assert "balance.tt: unknown key" in msg and "balance.t:" in msg
    spec.write_text("steps: [queries, nonsense]\n")
    with pytest.raises(config.ConfigError, match="nonsense"):
        config.load_yaml(spec)
    spec.write_text("balance:\n  t: 7\n")
    s = config.load_yaml(spec, overrides={"balance.seed": 3})
    assert (s.balance.t, s.balance.seed) == (7, 3)
    with pytest.raises(Exception):
        s.balance.t = 8  # frozen


@pytest.mark.parametrize("module", ["wit.cli", "wit"])  # `python -m wit` too (no console script needed)
def test_cli_lists_every_command(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    for cmd in ["world", "queries", "candidates", "match", "balance", "download", "filter", "dedupe", "shard",
                "train", "overlap", "run", "demo"]:
        assert f"    {cmd} " in out.stdout, cmd


def test_expand_skips_markers_and_temp_files(tmp_path):
    inputs = make_candidates(tmp_path / "in", parts=2)
    run_stage(KeepEvenLength(), inputs, str(tmp_path / "out"), progress=False)
    (tmp_path / "out" / ".tmp-abc-part-00009.parquet").write_bytes(b"junk")
    # a killed run's global-step shuffle files
    (tmp_path / "out" / folders.SHUFFLE / "0a1b" / "000001").mkdir(parents=True)
    (tmp_path / "out" / folders.SHUFFLE / "0a1b" / "000001" / "part-00007.parquet").write_bytes(b"junk")
    for suffixes in ((".parquet",), None):
        found = folders.expand(str(tmp_path / "out"), suffixes)
        assert [Path(p).name for p in found if p.endswith(".parquet")] == ["part-00000.parquet", "part-00001.parquet"]


def test_stage_commands_put_the_ledger_beside_out_unless_told():
    import argparse

    from wit.cli_args import ledger_dir

    assert ledger_dir(argparse.Namespace(out="runs/x/downloaded/", ledger=None)) == "runs/x/ledger"
    assert ledger_dir(argparse.Namespace(out="downloaded", ledger=None)) == "./ledger"
    assert ledger_dir(argparse.Namespace(out="runs/x/downloaded", ledger="elsewhere")) == "elsewhere"


def test_storage_options_parse_and_apply(monkeypatch):
    import fsspec.config

    from wit.io import storage

    opts = storage.parse(["anon=true", "gcs.token=anon", "s3.endpoint_url=http://127.0.0.1:9"])
    assert opts == {"s3": {"anon": True, "endpoint_url": "http://127.0.0.1:9"}, "gcs": {"token": "anon"}}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        storage.parse(["anon"])
    monkeypatch.setattr(fsspec.config, "conf", {})
    monkeypatch.delenv("FSSPEC_S3", raising=False)
    storage.apply({"s3": {"anon": True}})
    assert fsspec.config.conf["s3"] == {"anon": True} and json.loads(os.environ.pop("FSSPEC_S3")) == {"anon": True}

    class NoCredentialsError(Exception):
        pass

    try:
        try:
            raise NoCredentialsError("Unable to locate credentials")
        except NoCredentialsError as inner:
            raise OSError("listing failed") from inner
    except OSError as err:
        msg = storage.credentials_message(err)
    assert msg.startswith("no credentials") and "anon=true" in msg and "\n" not in msg
    assert storage.credentials_message(ValueError("x")) is None
