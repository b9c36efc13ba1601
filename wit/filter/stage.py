"""The filter stage: cheap checks first (caption, header geometry), then decode, then model hooks.

Reason codes: caption_too_short, caption_too_long, too_many_pixels, too_small, aspect_ratio,
decode_failed, nsfw, clip_score_low. Geometry checks use the original size recorded by download
(from the image header), so a decompression bomb is refused before any pixel is decoded.
A row with download's descriptors (``pixel_xxh3`` set) was decoded by download and its JPEG
written by it: only the stored JPEG's header is checked. Rows without them are fully decoded.
Model hooks are off unless a model path is given; nothing is ever downloaded.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import pyarrow as pa
from PIL import Image

from wit import schemas
from wit.config import FilterConfig
from wit.stage import BatchResult, Stage

log = logging.getLogger(__name__)


def check_row(row: dict, cfg: FilterConfig) -> str:
    """The reason ``row`` is dropped, or "" to keep it (checks that need no model)."""
    n = len((row.get("text") or "").strip())
    if n < cfg.min_caption_chars:
        return "caption_too_short"
    if n > cfg.max_caption_chars:
        return "caption_too_long"
    w, h = row["orig_width"] or row["width"], row["orig_height"] or row["height"]
    if w * h > cfg.max_pixels:
        return "too_many_pixels"
    if min(w, h) < cfg.min_side:
        return "too_small"
    if max(w, h) / max(1, min(w, h)) > cfg.max_aspect:
        return "aspect_ratio"
    decoded = bool(row.get("pixel_xxh3"))  # download decoded this image and encoded the JPEG itself
    try:
        with Image.open(io.BytesIO(row["jpg"])) as img:
            if img.size[0] * img.size[1] > cfg.max_pixels:
                return "too_many_pixels"
            if not decoded:
                img.load()
            elif img.size != (row["width"], row["height"]):
                return "decode_failed"
    except Exception:  # noqa: BLE001 - any decoder failure is the same outcome: decode_failed
        return "decode_failed"
    return ""


def with_descriptor_columns(batch: pa.Table) -> pa.Table:
    """``batch`` with download's descriptor columns, null where the input predates them."""
    for f in schemas.DESCRIPTOR_FIELDS:
        if f.name not in batch.column_names:
            batch = batch.append_column(f, pa.nulls(batch.num_rows, f.type))
    return batch


@dataclass
class FilterStage(Stage):
    cfg: FilterConfig = field(default_factory=FilterConfig)
    name: str = "filter"
    output_schema = schemas.FILTERED
    batch_rows: int = 1024

    def setup(self) -> None:
        from wit.filter.hooks import load_hooks

        self.hooks = load_hooks(self.cfg)
        for h in self.hooks.status():
            log.info("filter hook %s", h)

    def process_batch(self, batch: pa.Table) -> BatchResult:
        batch = with_descriptor_columns(batch)
        rows = batch.select(["text", "jpg", "width", "height", "orig_width", "orig_height",
                             "pixel_xxh3"]).to_pylist()
        reasons = [check_row(r, self.cfg) for r in rows]
        alive = [i for i, r in enumerate(reasons) if not r]
        if alive and self.hooks.active:
            for i, reason in zip(alive, self.hooks.judge([rows[i] for i in alive])):
                reasons[i] = reason
        keep = [i for i, r in enumerate(reasons) if not r]
        drop = [i for i, r in enumerate(reasons) if r]
        uids = batch.column("uid").to_pylist()
        return BatchResult(kept=batch.take(pa.array(keep, pa.int64())),
                           dropped=BatchResult.drops([uids[i] for i in drop], [reasons[i] for i in drop]))
