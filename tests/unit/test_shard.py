"""Shard stage: tars readable by webdataset, Parquet by DuckDB, counts agree, sizes configurable."""

from __future__ import annotations

import io

import duckdb
import pyarrow as pa
from PIL import Image

from wit import schemas
from wit.io import folders, ledger
from wit.shard.job import write_shards


def _parts(tmp_path, n_parts=3, rows=7):
    paths = []
    for p in range(n_parts):
        recs = []
        for r in range(rows):
            b = io.BytesIO()
            Image.new("RGB", (40, 30), (p * 40, r * 20, 9)).save(b, "JPEG")
            uid = f"{p:02d}{r:02d}" + "a" * 28
            recs.append({"uid": uid, "url": f"http://x/{uid}.jpg", "text": f"caption {p} {r}", "page_url": "",
                         "source": "t", "query_ids": [r % 3], "key": uid[:16], "jpg": b.getvalue(), "width": 40,
                         "height": 30, "orig_width": 80, "orig_height": 60, "sha256": "s", "phash": 123,
                         "pixel_xxh3": "p"})
        path = str(tmp_path / "final" / f"part-{p:05d}.parquet")
        folders.write_parquet(path, pa.Table.from_pylist(recs, schema=schemas.DEDUPED))
        paths.append(path)
    return paths


def test_shards_webdataset_and_duckdb_agree(tmp_path):
    import webdataset as wds

    inputs = _parts(tmp_path)
    out = str(tmp_path / "shards")
    rep = write_shards(inputs, out, 5, ledger_dir=str(tmp_path / "ledger"), progress=False)
    assert rep["stats"]["samples"] == 21 and rep["stats"]["shards"] == 5
    tars = sorted(str(p) for p in (tmp_path / "shards").glob("*.tar"))
    assert [p.rsplit("/", 1)[1] for p in tars] == [f"{i:05d}.tar" for i in range(5)]
    samples = list(wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "txt", "json"))
    assert len(samples) == 21 and samples[0][1].size == (40, 30) and samples[0][3]["caption"] == samples[0][2]
    n = duckdb.connect().execute(f"SELECT count(*) FROM '{out}/*.parquet'").fetchone()[0]
    assert n == len(samples)
    keys = duckdb.connect().execute(f"SELECT key FROM '{out}/*.parquet' ORDER BY shard, key").fetchall()
    assert sorted(k for (k,) in keys) == sorted(s[0] for s in samples)
    assert all(c.ok for c in ledger.reconcile(str(tmp_path / "ledger"), {"shard": out}).values())
    # a rerun is a no-op: same files, nothing twice
    rep2 = write_shards(inputs, out, 5, ledger_dir=str(tmp_path / "ledger"), progress=False)
    assert rep2["skipped_tasks"] == 5 and duckdb.connect().execute(f"SELECT count(*) FROM '{out}/*.parquet'").fetchone()[0] == 21
