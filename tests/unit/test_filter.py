"""Filter stage: every check drops with its reason; hooks are off without a model and say so."""

from __future__ import annotations

import io

import pyarrow as pa
from PIL import Image

from wit import schemas
from wit.config import FilterConfig
from wit.filter.hooks import Hooks
from wit.filter.stage import FilterStage
from wit.io import folders, ledger
from wit.runners import run_stage


def _jpg(w, h):
    b = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 90)).save(b, "JPEG")
    return b.getvalue()


def _row(uid, text="a red circle", w=200, h=150, jpg=None, ow=None, oh=None):
    return {"uid": uid, "url": f"http://x/{uid}", "text": text, "page_url": "", "source": "t", "query_ids": [1],
            "key": uid[:16], "jpg": _jpg(w, h) if jpg is None else jpg, "width": w, "height": h,
            "orig_width": ow or w, "orig_height": oh or h, "sha256": ""}


def test_each_filter_drops_with_its_reason(tmp_path):
    rows = [_row("ok"), _row("short", text="a"), _row("long", text="x" * 50), _row("small", w=20, h=20),
            _row("wide", w=400, h=50), _row("bomb", ow=30000, oh=30000), _row("broken", jpg=b"\xff\xd8garbage")]
    path = str(tmp_path / "in.parquet")
    folders.write_parquet(path, pa.Table.from_pylist(rows, schema=schemas.DOWNLOADED))
    cfg = FilterConfig(min_side=32, max_aspect=3.0, max_pixels=100_000_000, min_caption_chars=2, max_caption_chars=40)
    rep = run_stage(FilterStage(cfg=cfg), [path], str(tmp_path / "out"), ledger_dir=str(tmp_path / "l"),
                    progress=False)
    got = {r["uid"]: r["reason"] for r in folders.read_parquet(str(tmp_path / "l")).to_pylist()}
    assert got == {"ok": "", "short": "caption_too_short", "long": "caption_too_long", "small": "too_small",
                   "wide": "aspect_ratio", "bomb": "too_many_pixels", "broken": "decode_failed"}
    assert rep.kept == 1
    assert all(c.ok for c in ledger.reconcile(str(tmp_path / "l"), {"filter": str(tmp_path / "out")}).values())


def test_model_hooks_are_off_without_a_model_and_say_so():
    h = Hooks(FilterConfig())
    assert not h.active and h.status() == ["clip_score: off (no clip_model given)", "nsfw: off (no nsfw_model given)"]


def test_rows_with_download_descriptors_get_header_checks_only(tmp_path):
    b = io.BytesIO()
    Image.effect_noise((200, 150), 64).convert("RGB").save(b, "JPEG")  # noise: the entropy-coded data is most of it
    good = b.getvalue()
    rows = [_row("described", jpg=good[: len(good) // 2]),  # a full decode would fail; the header is intact
            _row("undescribed", jpg=good[: len(good) // 2]),
            _row("garbage", jpg=b"\xff\xd8garbage"), _row("resized", jpg=_jpg(100, 75))]
    for r in rows[:1] + rows[2:]:
        r.update(phash=1, phash_flip=2, pixel_xxh3="p")
    path = str(tmp_path / "in.parquet")
    folders.write_parquet(path, pa.Table.from_pylist(rows, schema=schemas.DOWNLOADED))
    run_stage(FilterStage(cfg=FilterConfig()), [path], str(tmp_path / "out"), ledger_dir=str(tmp_path / "l"),
              progress=False)
    got = {r["uid"]: r["reason"] for r in folders.read_parquet(str(tmp_path / "l")).to_pylist()}
    assert got == {"described": "", "undescribed": "decode_failed", "garbage": "decode_failed",
                   "resized": "decode_failed"}
    assert folders.read_parquet(str(tmp_path / "out")).column("phash").to_pylist() == [1]


def test_input_without_descriptor_columns_still_filters(tmp_path):
    legacy = pa.schema([f for f in schemas.DOWNLOADED if f.name not in ("phash", "phash_flip", "pixel_xxh3")])
    path = str(tmp_path / "in.parquet")
    folders.write_parquet(path, pa.Table.from_pylist([_row("ok"), _row("broken", jpg=b"\xff\xd8x")], schema=legacy))
    rep = run_stage(FilterStage(cfg=FilterConfig()), [path], str(tmp_path / "out"), ledger_dir=str(tmp_path / "l"),
                    progress=False)
    assert rep.kept == 1 and folders.read_parquet(str(tmp_path / "out")).column("pixel_xxh3").null_count == 1
