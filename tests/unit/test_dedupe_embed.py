"""Dedupe's optional open_clip embeddings: index round trip, CLI flags, copies matched by embedding.

A random-init wit-vit-micro saved as a local state_dict proves the plumbing only, not recall.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from wit.cli import main as cli_main
from wit.dedupe.embed import Embedder
from wit.dedupe.index import EvalIndex
from wit.dedupe.describe import DescribeStage

THRESHOLD = 0.9995  # random-init micro: copies score > 0.9999, distinct photos up to ~0.995


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import open_clip
    import torch

    import wit.train.model  # noqa: F401 - registers wit-vit-micro

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "micro.pt"
    torch.save(open_clip.create_model("wit-vit-micro").state_dict(), path)
    return str(path)


@pytest.fixture()
def eval_dir(tmp_path, shared_data):
    photos = sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))[:12]
    (tmp_path / "eval").mkdir()
    for p in photos[:4]:
        (tmp_path / "eval" / p.name).write_bytes(p.read_bytes())
    return tmp_path / "eval", photos


def _jpeg(img: Image.Image) -> bytes:
    b = io.BytesIO()
    img.convert("RGB").save(b, "JPEG", quality=90)
    return b.getvalue()


def test_index_round_trip_and_cli(tmp_path, eval_dir, checkpoint, capsys):
    folder, photos = eval_dir
    emb = Embedder("wit-vit-micro", checkpoint, threshold=THRESHOLD)
    index = EvalIndex.build({"e": str(folder)}, embedder=emb)
    assert index.embeddings.shape == (4, 64)
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    assert sorted(index.items[index.embedding_rows]) == sorted(p.name for p in photos[:4])
    index.save(str(tmp_path / "ix"))
    loaded = EvalIndex.load(str(tmp_path / "ix"))
    assert np.array_equal(loaded.embeddings, index.embeddings)
    assert loaded.embedding_rows.tolist() == index.embedding_rows.tolist()
    assert loaded.model["model"] == "wit-vit-micro" and loaded.model["threshold"] == THRESHOLD

    assert cli_main(["dedupe", "index", "--eval", f"e={folder}", "--model", "wit-vit-micro", "--checkpoint",
                     checkpoint, "--embed-threshold", str(THRESHOLD), "--out", str(tmp_path / "cli")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 4 and out["embeddings"]["dim"] == 64
    assert np.allclose(EvalIndex.load(str(tmp_path / "cli")).embeddings, index.embeddings, atol=1e-6)
    # without --checkpoint: no embeddings, said so, nothing fetched
    assert cli_main(["dedupe", "index", "--eval", f"e={folder}", "--out", str(tmp_path / "plain")]) == 0
    assert json.loads(capsys.readouterr().out)["embeddings"].startswith("off")
    assert EvalIndex.load(str(tmp_path / "plain")).embeddings is None
    with pytest.raises(FileNotFoundError):
        Embedder("wit-vit-micro", str(tmp_path / "missing.pt"))


def test_copies_matched_by_embedding(tmp_path, eval_dir, checkpoint):
    folder, photos = eval_dir
    EvalIndex.build({"e": str(folder)}, embedder=Embedder("wit-vit-micro", checkpoint, threshold=THRESHOLD)) \
        .save(str(tmp_path / "ix"))
    copy = photos[1].read_bytes()
    src = Image.open(photos[2])
    resized = _jpeg(src.resize((src.width // 2, src.height // 2)))
    unrelated = [p.read_bytes() for p in photos[4:12]]
    jpgs = [copy, resized] + unrelated
    # download's descriptors are present but useless (pixel hash "x", pHash search off via threshold -1),
    # so whatever matches here is the embedding
    batch = pa.table({"uid": [f"u{i}" for i in range(len(jpgs))], "jpg": pa.array(jpgs, pa.binary()),
                      "pixel_xxh3": ["x"] * len(jpgs), "phash": pa.array([0] * len(jpgs), pa.uint64()),
                      "phash_flip": pa.array([0] * len(jpgs), pa.uint64())})
    stage = DescribeStage(index_dir=str(tmp_path / "ix"), threshold=-1, centre_hash=False)
    stage.setup()
    assert stage.embedder is not None and stage.matcher.embed_per_set == {"e": THRESHOLD}
    d = stage.process_batch(batch).kept.to_pylist()
    assert [r["eval_match"] for r in d[:2]] == [f"e:{photos[1].name}", f"e:{photos[2].name}"]
    assert [r["eval_match_by"] for r in d[:2]] == ["embedding", "embedding"]
    assert all(r["eval_match"] == "" for r in d[2:]), [r["eval_match"] for r in d]
    # embeddings switched off in the stage: nothing matches
    off = DescribeStage(index_dir=str(tmp_path / "ix"), threshold=-1, centre_hash=False, embeddings=False)
    off.setup()
    assert off.embedder is None and not any(r["eval_match"] for r in off.process_batch(batch).kept.to_pylist())
