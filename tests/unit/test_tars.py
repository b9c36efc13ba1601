"""The lean tar reader: the same samples as webdataset, every tar header flavour, damage reported."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from wit.io import tars


def _tar(path, members, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(path, "w", format=fmt) as tf:
        for name, data in members:
            if data is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return str(path)


def test_same_samples_as_webdataset(tmp_path):
    import webdataset as wds
    from webdataset.tariterators import tarfile_samples

    path = str(tmp_path / "00000.tar")
    with wds.TarWriter(path) as sink:
        for i in range(30):
            # Sizes around the 512-byte block and the reader's chunk boundary.
            sink.write({"__key__": f"k{i:03d}", "jpg": bytes([i]) * (i * 97 + 511), "txt": f"caption {i}",
                        "json": json.dumps({"i": i})})
    with open(path, "rb") as f:
        ours = list(tars.samples(path, f, wanted=None))
    ours_chunked = list(tars.shard_samples([path]))
    theirs = list(tarfile_samples([{"url": path}]))
    assert ours == theirs == ours_chunked and len(ours) == 30
    assert list(_samples_with_chunk(path, 700)) == theirs


def _samples_with_chunk(path, chunk):
    current = {}
    with open(path, "rb") as f:
        for name, data in tars.members(f, chunk=chunk):
            key, ext = name.split(".", 1)
            if current.get("__key__") != key:
                if current:
                    yield current
                current = {"__key__": key, "__url__": path}
            current[ext] = data
    yield current


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_directories_and_metadata(tmp_path, fmt):
    deep = "d" * 60 + "/" + "e" * 60 + "/sample"  # > 100 chars: ustar prefix, GNU 'L' or pax path
    path = _tar(tmp_path / "x.tar", [
        ("dir", None), ("__meta__", b"skip me"), (f"{deep}.JPG", b"img"), (f"{deep}.txt", b"a cat"),
        (f"{deep}.json", b"{}"), ("plain.seg.txt", b"two dots"),
    ], fmt)
    with open(path, "rb") as f:
        got = list(tars.samples(path, f, wanted=("jpg", "txt", "seg.txt")))
    assert got == [{"__key__": deep, "__url__": path, "jpg": b"img", "txt": b"a cat"},
                   {"__key__": "plain", "__url__": path, "seg.txt": b"two dots"}]


def test_members_left_out_by_suffix_still_start_a_sample(tmp_path):
    path = _tar(tmp_path / "x.tar", [("a.json", b"{}"), ("b.jpg", b"img"), ("b.txt", b"t")])
    with open(path, "rb") as f:
        got = list(tars.samples(path, f, wanted=("jpg", "txt")))
    assert [s["__key__"] for s in got] == ["a", "b"] and "json" not in got[0]


def test_damaged_tars_raise(tmp_path):
    _tar(tmp_path / "x.tar", [("a.jpg", b"x" * 3000), ("a.txt", b"t")])
    raw = (tmp_path / "x.tar").read_bytes()
    truncated = tmp_path / "t.tar"
    truncated.write_bytes(raw[:2000])
    with pytest.raises(tars.TarFormatError, match="truncated"):
        list(tars.shard_samples([str(truncated)]))
    corrupt = bytearray(raw)
    corrupt[10] ^= 0xFF  # in the first header's name field
    bad = tmp_path / "c.tar"
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(tars.TarFormatError, match="checksum"):
        list(tars.shard_samples([str(bad)]))
