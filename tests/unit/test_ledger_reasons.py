"""Ledger reasons: codes from one closed set, per-row details in ``detail``, older ledgers still read."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pyarrow as pa

from wit import reasons, schemas
from wit.io import folders, ledger
from wit.stage import BatchResult
from wit.world.reasons import REASONS as WORLD_REASONS

from tests.conftest import ROOT


def test_world_fault_reasons_are_codes():
    assert all(reasons.is_reason(r) for r in WORLD_REASONS)
    assert reasons.is_reason("http_403") and not reasons.is_reason("eval_duplicate:objects:house/0005.jpg")


def _returned_reason_literals() -> set[str]:
    """String literals the stages hand to BatchResult.drops or return from a reason function."""
    found: set[str] = set()
    for path in (ROOT / "wit").rglob("*.py"):
        if path.parts[-2] in ("world", "train") or path.name in ("reasons.py",):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and ("reason" in node.name or node.name == "check_row"):
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Constant) and ret.value.value:
                        found.add(ret.value.value)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "drops" and len(node.args) > 1:
                for lst in ast.walk(node.args[1]):
                    for c in lst.elts if isinstance(lst, ast.List) else ():
                        if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value:
                            found.add(c.value)
    return found


def test_stage_reason_literals_are_in_the_closed_set():
    lits = _returned_reason_literals()
    assert {"empty_text", "too_small", "balanced_out"} <= lits  # the scan sees the stages
    assert sorted(r for r in lits if not reasons.is_reason(r)) == []


def test_detail_column_and_older_ledgers(tmp_path):
    led = str(tmp_path / "ledger")
    drops = BatchResult.drops(["a", "b", "c"], ["eval_duplicate", "eval_duplicate", "near_duplicate"],
                              ["objects:house/0005.jpg", "objects:tree/0001.jpg", ""])
    ledger.write_part(led, "dedupe", 0, ledger.ledger_table("dedupe", ["k"], drops))
    new = folders.read_parquet(led)
    assert new.schema.names == schemas.LEDGER.names
    assert new.to_pylist()[1] == {"uid": "a", "stage": "dedupe", "status": "dropped", "reason": "eval_duplicate",
                                  "detail": "objects:house/0005.jpg"}
    # a part written by older wit: no detail column, the detail inside the reason
    old = pa.table({"uid": ["d", "e"], "stage": ["dedupe"] * 2, "status": ["dropped", "kept"],
                    "reason": ["eval_duplicate:objects:dog/0002.jpg", ""]})
    folders.write_parquet(folders.join(led, "dedupe-00001.parquet"), old)
    c = ledger.summarize(led)["dedupe"]
    assert (c.kept, c.dropped, c.by_reason) == (2, 4, {"eval_duplicate": 3, "near_duplicate": 1})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "wit.cli", "ledger", "summary", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and '"eval_duplicate": 3' in res.stdout, res.stderr
