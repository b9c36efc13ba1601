"""candidates + match give identical Parquet tables under the local and the ray runner."""

from __future__ import annotations

import pyarrow as pa
import pytest

from wit.candidates.stage import CandidatesStage
from wit.io import folders
from wit.match.job import match_folder
from wit.runners import run_stage

pytestmark = pytest.mark.ray


def test_candidates_and_match_identical_under_local_and_ray(tmp_path, shared_data, ray_session):
    crawl = shared_data / "crawl"
    inputs = [str(crawl / n) for n in ("cc-main-2020-34-excerpt.warc.gz", "wget-sample-0000.warc.gz",
                                       "wget-sample-0001.warc.gz", "books-toscrape-with-images.warc")]
    queries = str(tmp_path / "queries.parquet")
    entries = ["the", "a", "of", "and", "logo", "Light", "in the", "book", "Two white people"]
    folders.write_parquet(queries, pa.table({"query_id": pa.array(range(len(entries)), pa.int32()), "query": entries,
                                             "source": ["t"] * len(entries), "score": [0.0] * len(entries)}))
    outs = {}
    for runner in ("local", "ray"):
        kw = dict(runner=runner, ledger_dir=str(tmp_path / runner / "ledger"), progress=False)
        cand = str(tmp_path / runner / "candidates")
        run_stage(CandidatesStage(format="warc"), inputs, cand, **kw)
        rep = match_folder(queries, cand, str(tmp_path / runner / "matched"), **kw)
        assert rep["runner"] == runner and rep["kept"] > 0
        outs[runner] = [folders.read_parquet([p]) for p in folders.expand(str(tmp_path / runner), (".parquet",))
                        if "/ledger/" not in p]
    assert len(outs["local"]) == len(outs["ray"]) == 4 + 4 + 1  # candidate parts, matched parts, entry_counts
    for a, b in zip(outs["local"], outs["ray"]):
        assert a.equals(b)
