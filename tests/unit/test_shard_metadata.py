"""Shard metadata: img2dataset's columns, pHash as hex, Hugging Face ``datasets`` reads the tars, and
the overlap reader takes wit's current, older wit and img2dataset shards (or names the missing column)."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from wit.io import folders
from wit.overlap.detector import TrainHashStage
from wit.shard import metadata
from wit.shard.job import write_shards

from tests.helpers import make_final

BIG = (1 << 64) - 5  # above int64: the value that broke JSON readers


def _jpeg(i: int) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (40, 30), (i * 30 % 256, 90, 9)).save(b, "JPEG")
    return b.getvalue()


@pytest.fixture
def shards(tmp_path):
    out = str(tmp_path / "shards")
    write_shards(make_final(tmp_path), out, 4, ledger_dir=str(tmp_path / "ledger"), progress=False)
    return tmp_path / "shards"


def test_parquet_and_sidecar_use_img2dataset_columns(shards):
    t = folders.read_parquet(str(shards / "00000.parquet"))
    assert tuple(t.column_names[: len(metadata.IMG2DATASET_COLUMNS)]) == metadata.IMG2DATASET_COLUMNS
    row = t.to_pylist()[0]
    assert row["status"] == "success" and row["error_message"] is None
    assert (row["original_width"], row["original_height"]) == (80, 60) and row["sha256"] == f"{0:064x}"
    assert row["phash"] == f"{BIG:016x}" and len(row["phash"]) == 16
    with tarfile.open(shards / "00000.tar") as tar:
        meta = json.loads(tar.extractfile(f"{row['key']}.json").read())
    assert set(metadata.IMG2DATASET_COLUMNS) <= set(meta) and meta["phash"] == row["phash"]
    assert meta["caption"] == row["caption"] == "caption 0"


def test_huggingface_datasets_reads_every_sample(shards, tmp_path):
    datasets = pytest.importorskip("datasets")
    tars = sorted(str(p) for p in shards.glob("*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert len(ds) == 7
    rows = sorted(ds, key=lambda r: r["txt"])
    assert [r["txt"] for r in rows] == [f"caption {i}" for i in range(7)]
    assert rows[0]["jpg"].size == (40, 30)
    assert rows[3]["json"]["phash"] == f"{BIG - 3:016x}" and rows[3]["json"]["original_width"] == 80


def test_phash_hex_round_trip():
    values = np.array([0, 1, BIG, (1 << 63) + 7], np.uint64)
    hexed = metadata.phash_hex(values.tolist())
    assert hexed.to_pylist()[2] == f"{BIG:x}" and all(len(h) == 16 for h in hexed.to_pylist())
    assert np.array_equal(metadata.phash_ints(hexed), values)
    signed = pa.array(values.view(np.int64))  # older shards written through an int64 column
    assert np.array_equal(metadata.phash_ints(signed), values)
    assert np.array_equal(metadata.phash_ints(pa.array(values)), values)
    with pytest.raises(metadata.MissingColumn, match="hex"):
        metadata.phash_ints(pa.array(["abc"]))


def _tar(path, n=3, json_meta=True) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            parts = {"jpg": _jpeg(i), "txt": f"t{i}".encode()}
            if json_meta:
                parts["json"] = json.dumps({"key": f"{i:09d}", "status": "success"}).encode()
            for ext, data in parts.items():
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _hashes(tar: str) -> pa.Table:
    return pa.concat_tables(list(TrainHashStage().read_task(tar)))


def test_overlap_reads_older_wit_shards(tmp_path):
    """An older wit shard: orig_width and an integer (uint64) phash in the sidecar Parquet."""
    _tar(tmp_path / "00000.tar")
    folders.write_parquet(str(tmp_path / "00000.parquet"), pa.table({
        "key": [f"{i:09d}" for i in range(3)], "uid": ["u0", "u1", "u2"], "orig_width": [5, 5, 5],
        "phash": pa.array([BIG, 1, 2], pa.uint64())}))
    t = _hashes(str(tmp_path / "00000.tar"))
    assert t.column("phash").to_pylist() == [f"{BIG:016x}", f"{1:016x}", f"{2:016x}"]
    assert t.column("uid").to_pylist() == ["u0", "u1", "u2"]
    up = metadata.upgrade(folders.read_parquet(str(tmp_path / "00000.parquet")))
    assert "original_width" in up.column_names and "orig_width" not in up.column_names


def test_overlap_reads_img2dataset_shards_by_decoding(tmp_path):
    """img2dataset's Parquet has no phash: the images are hashed instead."""
    _tar(tmp_path / "00000.tar")
    folders.write_parquet(str(tmp_path / "00000.parquet"), pa.table({
        "key": [f"{i:09d}" for i in range(3)], "url": ["u"] * 3, "caption": ["c"] * 3,
        "status": ["success"] * 3, "error_message": [None] * 3, "original_width": [40] * 3}))
    t = _hashes(str(tmp_path / "00000.tar"))
    assert t.num_rows == 3 and all(len(h) == 16 for h in t.column("phash").to_pylist())


def test_overlap_names_the_missing_column(tmp_path):
    _tar(tmp_path / "00000.tar")
    folders.write_parquet(str(tmp_path / "00000.parquet"), pa.table({"phash": pa.array([1, 2, 3], pa.uint64())}))
    with pytest.raises(metadata.MissingColumn) as err:
        _hashes(str(tmp_path / "00000.tar"))
    msg = str(err.value)
    assert "missing column 'key'" in msg and "\n" not in msg


def test_wit_train_reads_img2dataset_shards(tmp_path):
    """img2dataset's layout (NNNNNNNNN.jpg/.txt/.json, its own json fields) feeds wit's trainer as is."""
    from wit.train.data import LoaderConfig, ShardStream
    from wit.train.model import create

    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for i in range(8):
            meta = {"key": f"{i:09d}", "url": "u", "caption": f"t{i}", "status": "success", "error_message": None,
                    "width": 40, "height": 30, "original_width": 80, "original_height": 60, "sha256": "s"}
            for ext, data in (("jpg", _jpeg(i)), ("txt", f"t{i}".encode()), ("json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    bundle = create("wit-vit-micro")
    cfg = LoaderConfig((str(tmp_path / "00000.tar"),), batch_size=4, workers=0, shuffle_buffer=4, image_size=32)
    batch = next(iter(ShardStream(cfg, bundle.tokenizer)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["bad"] == 0
