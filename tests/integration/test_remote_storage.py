"""s3:// inputs and outputs against moto's S3 server on 127.0.0.1: extract from s3 to s3, match reading
from it, anonymous reads through ``--storage-option anon=true``, one line when credentials are missing."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT
from wit import schemas

NO_AWS = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
          "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3():
    """(endpoint URL, an s3fs filesystem with credentials) of a moto server started for these tests."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    import s3fs

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    fs = s3fs.S3FileSystem(key="test", secret="test", endpoint_url=endpoint, skip_instance_cache=True)
    yield endpoint, fs
    server.stop()


def _wit(args: list[str], endpoint: str, creds: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_")) and k not in extra}
    env.update(NO_AWS, PYTHONPATH=str(ROOT), AWS_ENDPOINT_URL=endpoint, FSSPEC_S3_ENDPOINT_URL=endpoint)
    env.update({k: v for k, v in extra.items() if v is not None})
    if creds:
        env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    return subprocess.run([sys.executable, "-m", "wit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _urls_parquet(n: int = 6) -> bytes:
    t = pa.table({"url": [f"http://img.test/{i}.jpg" for i in range(n)],
                  "text": [f"a photo of a {'red' if i % 2 else 'blue'} house" for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def _read(fs, path: str) -> pa.Table:
    return pa.concat_tables(pq.read_table(fs.open(p, "rb")) for p in sorted(fs.glob(path + "/part-*.parquet")))


def test_extract_and_match_on_s3(s3, tmp_path):
    endpoint, fs = s3
    fs.mkdir("wit-in")
    fs.pipe("wit-in/urls/urls.parquet", _urls_parquet())
    res = _wit(["candidates", "extract", "--input", "s3://wit-in/urls/urls.parquet", "--format", "parquet",
                "--out", "s3://wit-out/run/candidates", "--no-progress"], endpoint)
    assert res.returncode == 0, res.stderr[-2000:]
    cands = _read(fs, "wit-out/run/candidates")
    assert cands.num_rows == 6 and fs.exists("wit-out/run/ledger")
    queries = str(tmp_path / "queries.parquet")
    pq.write_table(pa.table({"query_id": pa.array([0, 1], pa.int32()), "query": ["red", "house"],
                             "source": ["test"] * 2, "score": [1.0, 1.0]}, schema=schemas.QUERIES), queries)
    res = _wit(["match", "--queries", queries, "--candidates", "s3://wit-out/run/candidates",
                "--out", "s3://wit-out/run/matched", "--no-progress"], endpoint)
    assert res.returncode == 0, res.stderr[-2000:]
    matched = _read(fs, "wit-out/run/matched")
    assert matched.num_rows == 6 and sorted(len(q) for q in matched.column("query_ids").to_pylist()) == [1] * 3 + [2] * 3
    res = _wit(["ledger", "check", "s3://wit-out/run"], endpoint)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]


def test_anonymous_read_and_missing_credentials(s3, tmp_path):
    endpoint, fs = s3
    fs.mkdir("wit-public", acl="public-read")
    fs.pipe("wit-public/urls.parquet", _urls_parquet(4))
    fs.chmod("wit-public/urls.parquet", acl="public-read")
    args = ["candidates", "extract", "--input", "s3://wit-public/urls.parquet", "--format", "parquet",
            "--out", str(tmp_path / "c"), "--no-progress"]
    res = _wit(["--storage-option", "anon=true", *args], endpoint, creds=False)
    assert res.returncode == 0, res.stderr[-2000:]
    res = _wit(args, endpoint, creds=False)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert lines[-1].startswith("wit: error: no credentials") and "anon=true" in lines[-1]


@pytest.mark.ray
@pytest.mark.slow
def test_match_on_ray_reads_and_writes_s3(s3, tmp_path):
    """The global steps' Ray tasks read s3:// parts through fsspec on the workers: the uid-duplicate
    shuffle drops a uid repeated across parts, entry counts are exact."""
    endpoint, fs = s3
    fs.mkdir("wit-ray")
    rows = {0: ["red house", "blue car", "red car"], 1: ["red house", "a house"]}  # "red house" in both parts
    for p, texts in rows.items():
        t = pa.table({"uid": [f"u-{x}" for x in texts], "url": [f"http://img.test/{x}.jpg" for x in texts],
                      "text": texts, "page_url": [""] * len(texts), "source": ["t"] * len(texts)},
                     schema=schemas.CANDIDATES)
        buf = io.BytesIO()
        pq.write_table(t, buf)
        fs.pipe(f"wit-ray/run/candidates/part-{p:05d}.parquet", buf.getvalue())
    queries = str(tmp_path / "queries.parquet")
    pq.write_table(pa.table({"query_id": pa.array([0, 1], pa.int32()), "query": ["red", "house"],
                             "source": ["test"] * 2, "score": [1.0, 1.0]}, schema=schemas.QUERIES), queries)
    res = _wit(["match", "--queries", queries, "--candidates", "s3://wit-ray/run/candidates",
                "--out", "s3://wit-ray/run/matched", "--runner", "ray", "--workers", "1", "--no-progress"], endpoint,
               env={"RAY_ADDRESS": None})
    assert res.returncode == 0, res.stderr[-3000:]
    matched = _read(fs, "wit-ray/run/matched")
    assert sorted(matched.column("text").to_pylist()) == ["a house", "red car", "red house"]
    counts = pq.read_table(fs.open("wit-ray/run/matched/entry_counts.parquet", "rb")).to_pydict()
    assert dict(zip(counts["query_id"], counts["count"])) == {0: 2, 1: 2}
    res = _wit(["ledger", "check", "s3://wit-ray/run"], endpoint)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
