"""The shard loader: every sample reaches exactly one rank, resume skips exactly what was consumed."""

from __future__ import annotations

import io
import json

import pytest
import torch

from wit.train import synthetic
from wit.train.data import LoaderConfig, ShardStream, list_shards, make_loader
from wit.train.model import create


@pytest.fixture(scope="module")
def bundle():
    return create("wit-vit-micro")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return synthetic.write_shards(tmp_path_factory.mktemp("shards"), n_shards=4, per_shard=16, size=36)


def _take(stream, n):
    it = iter(stream)
    return [next(it) for _ in range(n)]


def _keys(batches):
    return [k for b in batches for k in b["key"]]


def test_batches_have_images_tokens_and_cursors(bundle, shards):
    cfg = LoaderConfig(tuple(shards), batch_size=8, workers=0, shuffle_buffer=16, image_size=32)
    b1, b2 = _take(ShardStream(cfg, bundle.tokenizer), 2)
    assert b1["image"].shape == (8, 3, 32, 32) and b1["image"].dtype == torch.uint8
    x = bundle.normalize(b1["image"])
    assert x.dtype == torch.float32 and -3 < x.mean() < 3
    assert b1["text"].shape == (8, 16) and b1["text"].dtype == torch.long
    assert (b1["cursor"], b2["cursor"]) == (8, 16) and b1["bad"] == 0
    assert len(set(b1["key"] + b2["key"])) == 16


@pytest.mark.parametrize("n_shards", [4, 1])
def test_ranks_split_an_epoch_without_overlap(bundle, shards, n_shards):
    """By shard when there are enough shards, else every world_size-th sample."""
    used = shards[:n_shards]
    per_rank = 16 * n_shards // 2
    seen = []
    for rank in (0, 1):
        cfg = LoaderConfig(tuple(used), batch_size=8, workers=0, shuffle_buffer=8, rank=rank, world_size=2)
        seen.append(_keys(_take(ShardStream(cfg, bundle.tokenizer), per_rank // 8)))
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == 16 * n_shards


def test_epochs_reshuffle(bundle, shards):
    cfg = LoaderConfig(tuple(shards), batch_size=16, workers=0, shuffle_buffer=32)
    keys = _keys(_take(ShardStream(cfg, bundle.tokenizer), 8))
    first, second = keys[:64], keys[64:]
    assert sorted(first) == sorted(second) and first != second


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_cursors_continues_the_stream(bundle, shards, workers):
    cfg = LoaderConfig(tuple(shards), batch_size=8, workers=workers, shuffle_buffer=16)
    full = _take(make_loader(cfg, bundle.tokenizer), 5)
    cursors = [0] * max(1, workers)
    for b in full[:3]:
        cursors[b["worker"]] = b["cursor"]
    resumed = _take(make_loader(cfg, bundle.tokenizer, cursors), 2)
    # Workers restart their turn-taking at worker 0, so the next two batches may swap places.
    assert sorted(_keys(resumed)) == sorted(_keys(full[3:]))
    # Crops are seeded by stream position: a resumed run sees the very same pixels and tokens.
    by_start = {b["key"][0]: b for b in full[3:]}
    for b in resumed:
        torch.testing.assert_close(b["image"], by_start[b["key"][0]]["image"], rtol=0, atol=0)
        assert torch.equal(b["text"], by_start[b["key"][0]]["text"])


def test_undecodable_samples_are_counted_not_fatal(bundle, tmp_path):
    import webdataset as wds
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (36, 36), (200, 10, 10)).save(buf, format="JPEG")
    with wds.TarWriter(str(tmp_path / "00000.tar")) as sink:
        for i in range(10):
            jpg = b"not a jpeg" if i in (2, 5) else buf.getvalue()
            sink.write({"__key__": f"k{i}", "jpg": jpg, "txt": "a red square", "json": json.dumps({})})
        sink.write({"__key__": "nocaption", "jpg": buf.getvalue()})
    cfg = LoaderConfig(tuple(list_shards(str(tmp_path))), batch_size=8, workers=0, shuffle_buffer=1)
    (batch,) = _take(ShardStream(cfg, bundle.tokenizer), 1)
    assert batch["bad"] == 2 and batch["cursor"] == 10
    assert "k2" not in batch["key"] and "k5" not in batch["key"]


def test_list_shards_needs_tars(tmp_path):
    with pytest.raises(FileNotFoundError):
        list_shards(str(tmp_path))
