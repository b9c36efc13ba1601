"""The shard stage: webdataset tars (KEY.jpg, KEY.txt, KEY.json) with one Parquet index per tar.

Shards hold a configurable number of samples, which input parts do not: a pre-pass regroups the
rows, in input order, into ``OUT/_chunks/_chunk-NNNNN.parquet`` of exactly N rows (the last may
be shorter), then one task per chunk writes ``OUT/NNNNN.tar`` and ``OUT/NNNNN.parquet``. Both
passes are deterministic, so a rerun after a kill rewrites the same files under the same names.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from wit import schemas
from wit.io import folders
from wit.shard import metadata
from wit.records import sample_key
from wit.stage import BatchResult, Stage

CHUNKS = "_chunks"
#: a tar member stem webdataset groups correctly (no dot) and no extractor can place outside its folder
_SAFE_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SHARD_PARQUET = re.compile(r"[0-9]{5}\.parquet")
_SHARD_TAR = re.compile(r"[0-9]{5}\.tar")


def make_chunks(inputs: list[str], out: str, samples_per_shard: int) -> list[str]:
    """Regroup ``inputs`` into chunks of ``samples_per_shard`` rows; cached (``_chunks/_done.json``)."""
    done = folders.join(out, CHUNKS, "_done.json")
    if folders.exists(done):
        return folders.read_json(done)["chunks"]
    paths: list[str] = []
    pending: list[pa.Table] = []
    n_pending = 0

    def flush(rows: pa.Table) -> None:
        url = folders.join(out, CHUNKS, f"_chunk-{len(paths):05d}.parquet")
        folders.write_parquet(url, rows)
        paths.append(url)

    for path in inputs:
        fs, p = folders.fs_and_path(path)
        with fs.open(p, "rb") as f:
            for rb in pq.ParquetFile(f).iter_batches(batch_size=1024):
                pending.append(pa.Table.from_batches([rb]))
                n_pending += rb.num_rows
                while n_pending >= samples_per_shard:
                    t = pa.concat_tables(pending, promote_options="default")
                    flush(t.slice(0, samples_per_shard))
                    rest = t.slice(samples_per_shard)
                    pending, n_pending = ([rest] if rest.num_rows else []), rest.num_rows
    if n_pending:
        flush(pa.concat_tables(pending, promote_options="default"))
    folders.write_json(done, {"chunks": paths, "samples_per_shard": samples_per_shard})
    return paths


def shard_keys(rows: list[dict]) -> list[str]:
    """Each row's tar key: its ``key`` when safe and not yet used in this shard, else one derived from its uid.

    Deterministic in row order, so a rerun writes the same names; the uid itself stays in the sidecar.
    """
    used: set[str] = set()
    keys = []
    for r in rows:
        key = r.get("key") or ""
        if not _SAFE_KEY.fullmatch(key) or key in used:
            base = key = sample_key(str(r.get("uid") or ""))
            n = 1
            while key in used:
                key, n = f"{base}_{n}", n + 1
        used.add(key)
        keys.append(key)
    return keys


def _tar_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for r in rows:
            meta = metadata.sidecar(r)
            for ext, data in (("jpg", r["jpg"]), ("txt", (r["text"] or "").encode()),
                              ("json", json.dumps(meta, sort_keys=True).encode())):
                info = tarfile.TarInfo(f"{r['key']}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0  # mtime 0: byte-identical reruns
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class ShardStage(Stage):
    name: str = "shard"
    output_schema = None
    batch_rows: int = 4096

    def process_batch(self, batch: pa.Table) -> BatchResult:
        return BatchResult(kept=batch)

    def write_output(self, kept: pa.Table, out: str, index: int) -> int:
        rows = kept.to_pylist()
        for r, key in zip(rows, shard_keys(rows)):
            r.setdefault("phash", None)
            r["key"] = key
        shard = f"{index:05d}"
        folders.atomic_write_bytes(folders.join(out, f"{shard}.tar"), _tar_bytes(rows))
        metas = [metadata.sidecar(r) for r in rows]
        cols = {f.name: pa.array([m.get(f.name) for m in metas], f.type) for f in schemas.SHARD if f.name != "shard"}
        cols["shard"] = pa.array([shard] * len(rows), pa.string())
        folders.write_parquet(folders.join(out, f"{shard}.parquet"), pa.table(cols, schema=schemas.SHARD))
        return len(rows)


def write_stats(out: str, samples_per_shard: int) -> dict:
    """``OUT/_stats.json``: samples, shards, bytes and per-query sample counts (from the Parquet)."""
    import duckdb

    fs, path = folders.fs_and_path(out)
    con = duckdb.connect()
    files = folders.list_named(out, _SHARD_PARQUET)
    samples, shards, per_query = 0, 0, []
    if files:
        folders.duckdb_view(con, "shards", files)
        samples, shards = con.execute("SELECT count(*), count(DISTINCT shard) FROM shards").fetchone()
        per_query = con.execute("SELECT q, count(*) FROM (SELECT unnest(query_ids) q FROM shards)"
                                " GROUP BY q ORDER BY 2 DESC, 1").fetchall()
    stats = {
        "samples": samples, "shards": shards, "samples_per_shard": samples_per_shard,
        "tar_bytes": sum(fs.size(p) for p in folders.list_named(out, _SHARD_TAR)),
        "queries": len(per_query), "max_per_query": per_query[0][1] if per_query else 0,
        "top_queries": [[int(q), int(n)] for q, n in per_query[:20]],
    }
    folders.write_json(folders.join(out, "_stats.json"), stats)
    return stats
