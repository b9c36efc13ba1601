"""The audit notebooks run top to bottom against a small run directory that follows the run-directory contract (docs/pipelines.md).

Set WIT_TEST_RUN=RUN to also run them against a real run (e.g. the demo's).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit import schemas
from wit.io import folders, ledger
from wit.records import candidate_uid

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
QUERIES = ["red", "circle", "blue", "square", "green", "triangle"]
FUNNEL = ["candidates", "match", "balance", "download", "filter", "dedupe", "balance_final", "shard"]


def _write_ledger(run: Path, stage: str, kept: list[str], dropped: list[tuple[str, str]]) -> None:
    drops = pa.table({"uid": [u for u, _ in dropped], "reason": [r.partition(":")[0] for _, r in dropped],
                      "detail": [r.partition(":")[2] for _, r in dropped]}, schema=schemas.DROPS)
    ledger.write_part(str(run / "ledger"), stage, 0, ledger.ledger_table(stage, kept, drops))


def build_run(run: Path, seed: int = 0) -> Path:
    """A small contract-conforming run: queries, candidates .. shards with a ledger, and a real overlap report."""
    import webdataset as wds

    from wit.imagehash.descriptors import describe_bytes
    from wit.overlap.job import OverlapJob, run_overlap
    from wit.train import synthetic

    rng = random.Random(seed)
    folders.write_parquet(str(run / "queries" / "queries.parquet"), pa.table({
        "query_id": list(range(len(QUERIES))), "query": QUERIES, "source": ["wordnet"] * 3 + ["unigram"] * 3,
        "score": [1.0] * len(QUERIES)}, schema=schemas.QUERIES))
    cands = []
    for i in range(160):
        colour, shape = rng.choice(synthetic.concepts())
        text = f"a photo of a {colour} {shape}" if i % 5 else f"photo number {i}"
        url = f"http://web.test/img/{i}.jpg"
        qids = [QUERIES.index(w) for w in text.split() if w in QUERIES]
        cands.append(dict(uid=candidate_uid(url, text), url=url, text=text, page_url="http://web.test/", source="wat",
                          query_ids=qids, colour=colour, shape=shape))
    folders.write_parquet(str(run / "candidates" / "part-00000.parquet"),
                          pa.Table.from_pylist([{k: c[k] for k in schemas.CANDIDATES.names} for c in cands],
                                               schema=schemas.CANDIDATES))
    alive = list(cands)
    reasons = {"match": "no_match", "balance": "not_sampled", "download": "http_404", "filter": "too_small",
               "dedupe": "eval_duplicate:shapes:red_circle/0000.png", "balance_final": "not_sampled"}
    _write_ledger(run, "candidates", [c["uid"] for c in alive], [])
    for stage in FUNNEL[1:-1]:
        if stage == "match":
            drop = [c for c in alive if not c["query_ids"]]
        else:
            drop = [c for c in alive if rng.random() < 0.1]
        ids = {id(c) for c in drop}
        alive = [c for c in alive if id(c) not in ids]
        _write_ledger(run, stage, [c["uid"] for c in alive], [(c["uid"], reasons[stage]) for c in drop])
        if stage in ("match", "balance"):
            folder = "matched" if stage == "match" else "balanced"
            folders.write_parquet(str(run / folder / "part-00000.parquet"), pa.Table.from_pylist(
                [{k: c[k] for k in schemas.MATCHED.names} for c in alive], schema=schemas.MATCHED))
    counts: dict[int, int] = {}
    for c in cands:
        for q in c["query_ids"]:
            counts[q] = counts.get(q, 0) + 1
    folders.write_parquet(str(run / "matched" / "entry_counts.parquet"), pa.table(
        {"query_id": list(counts), "count": list(counts.values())}, schema=schemas.ENTRY_COUNTS))
    _write_ledger(run, "shard", [c["uid"] for c in alive], [])
    rows = []
    (run / "shards").mkdir()
    with wds.TarWriter(str(run / "shards" / "00000.tar")) as sink:
        for i, c in enumerate(alive):
            size = rng.choice([48, 64, 96])
            data = synthetic.jpeg(synthetic.render(c["colour"], c["shape"], size, rng))
            key = f"00000{i:04d}"
            sink.write({"__key__": key, "jpg": data, "txt": c["text"], "json": json.dumps({"uid": c["uid"]})})
            rows.append(dict(key=key, uid=c["uid"], url=c["url"], caption=c["text"], width=size, height=size,
                             original_width=size, original_height=size, sha256="", status="success",
                             phash=f"{describe_bytes(data)[1]:016x}",
                             query_ids=c["query_ids"], page_url=c["page_url"], source=c["source"], shard="00000"))
    folders.write_parquet(str(run / "shards" / "00000.parquet"), pa.Table.from_pylist(rows, schema=schemas.SHARD))
    synthetic.write_imagefolder(run / "world" / "eval" / "shapes", per_class=4, size=48, seed=seed + 7)
    folders.write_json(str(run / "run.json"), {"steps": FUNNEL + ["overlap"], "config": {"balance_final": {"t": 20}},
                                              "stages": {}})
    run_overlap(OverlapJob([str(run / "shards")], {"shapes": str(run / "world" / "eval" / "shapes")},
                           str(run / "overlap")), progress=False)
    return run


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("nbrun") / "run")


def test_fixture_run_reconciles(small_run):
    checks = ledger.reconcile(str(small_run / "ledger"), chain=FUNNEL)
    assert all(c.ok for c in checks.values()), {k: c.problems for k, c in checks.items()}
    assert checks["shard"].kept == pq.read_table(small_run / "shards" / "00000.parquet").num_rows > 0


def _runs(small_run):
    extra = os.environ.get("WIT_TEST_RUN")
    return [small_run] + ([Path(extra)] if extra else [])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(notebook, small_run, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for run in _runs(small_run):
        monkeypatch.setenv("WIT_RUN", str(run))
        nb = nbformat.read(notebook, as_version=4)
        # "python3" resolves to this interpreter (jupyter_client swaps a bare `python` for sys.executable).
        nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                resources={"metadata": {"path": str(ROOT)}}).execute()
        text = "\n".join(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
                         + o.get("data", {}).get("text/markdown", "")
                         for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
        assert "Error" not in text, text[-2000:]
        if run == small_run and notebook.stem == "audit":
            assert images >= 4  # head/tail curve, size histograms, funnel, sample grid
            assert "balance_final" in text and "not_sampled" in text and "eval_duplicate" in text
            assert "images shown for 4 queries" in text
            assert "shapes" in text and "Data overlap analysis" in text


@pytest.mark.slow
def test_readme_commands_on_a_run(small_run, tmp_path):
    """The documented runners: papermill with the parameters cell, nbconvert, and the duckdb CLI."""
    bindir = Path(sys.executable).parent
    for tool in ("papermill", "jupyter", "duckdb"):
        if not (bindir / tool).exists():
            pytest.skip(f"{tool} not installed beside {sys.executable}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    env.pop("WIT_RUN", None)
    out = tmp_path / "audit.ipynb"
    res = subprocess.run([str(bindir / "papermill"), "notebooks/audit.ipynb", str(out), "-p", "run_dir",
                          str(small_run), "-k", "python3"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert str(small_run) in out.read_text() and "eval_duplicate" in out.read_text()
    res = subprocess.run([str(bindir / "jupyter"), "nbconvert", "--to", "html", "--execute", "notebooks/audit.ipynb",
                          "--output-dir", str(tmp_path)], cwd=ROOT, env={**env, "WIT_RUN": str(small_run)},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and (tmp_path / "audit.html").stat().st_size > 10_000, res.stderr[-3000:]
    res = subprocess.run([str(bindir / "duckdb"), "-c", "SELECT stage, status, reason, count(*) FROM "
                          f"'{small_run}/ledger/*.parquet' GROUP BY ALL"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "eval_duplicate" in res.stdout, res.stderr
