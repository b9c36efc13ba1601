"""Shard metadata in img2dataset's column names, and readers that also take older or foreign shards.

A shard's Parquet and each sample's ``.json`` carry img2dataset's columns first (``key, url, caption,
width, height, original_width, original_height, sha256, status, error_message``), then wit's own.
pHashes leave wit as 16-digit lower-case hex strings: a uint64 above 2**63 overflows the int64
that JSON readers (Hugging Face ``datasets``, pandas) assume. wit reads both forms back.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: img2dataset's per-sample columns, in its order of importance; wit's shards start with these.
IMG2DATASET_COLUMNS = ("key", "url", "caption", "width", "height", "original_width", "original_height",
                       "sha256", "status", "error_message")
#: older wit shard column -> current name
RENAMED = {"orig_width": "original_width", "orig_height": "original_height"}
PHASH_HEX_DIGITS = 16


class MissingColumn(ValueError):
    """A shard's metadata lacks a column the reader needs; the message is one line naming it."""


def phash_hex(values) -> pa.Array:
    """uint64 pHashes (list, numpy or Arrow; nulls kept) as 16-digit hex strings."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.uint64())
    return pa.array([None if v is None else f"{v:0{PHASH_HEX_DIGITS}x}" for v in arr.cast(pa.uint64()).to_pylist()],
                    pa.string())


def phash_ints(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A pHash column as uint64: hex strings (current shards) or integers (older shards); nulls -> 0."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        texts = pc.fill_null(column, "0" * PHASH_HEX_DIGITS).to_pylist()
        bad = [t for t in texts if len(t) != PHASH_HEX_DIGITS]
        if bad:
            raise MissingColumn(f"phash {bad[0]!r} is not a {PHASH_HEX_DIGITS}-digit hex string")
        return np.frombuffer(bytes.fromhex("".join(texts)), dtype=">u8").astype(np.uint64)
    if pa.types.is_integer(column.type):
        return pc.fill_null(column.cast(pa.int64()).view(pa.uint64()) if pa.types.is_signed_integer(column.type)
                            else column.cast(pa.uint64()), 0).to_numpy(zero_copy_only=False).astype(np.uint64)
    raise MissingColumn(f"phash column has type {column.type}; expected 16-digit hex strings or integers")


def upgrade(table: pa.Table) -> pa.Table:
    """Older wit shard metadata (``orig_width``, integer ``phash``) under the current names and types."""
    names = [RENAMED.get(n, n) if RENAMED.get(n) not in table.column_names else n for n in table.column_names]
    table = table.rename_columns(names)
    if "phash" in names and not pa.types.is_string(table.schema.field("phash").type):
        i = names.index("phash")
        table = table.set_column(i, "phash", phash_hex(pa.array(phash_ints(table.column("phash")), pa.uint64())))
    return table


def require(table: pa.Table, columns: tuple[str, ...], source: str) -> None:
    """Raise ``MissingColumn`` naming the first of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise MissingColumn(f"{source}: missing column {missing[0]!r} (has: {', '.join(table.column_names)})")


def sidecar(row: dict) -> dict:
    """The ``KEY.json`` of one shard sample: img2dataset's fields, then wit's (pHash as hex)."""
    ph = row.get("phash")
    meta = {
        "key": row["key"], "url": row.get("url"), "caption": row.get("text"),
        "width": row.get("width"), "height": row.get("height"),
        "original_width": row.get("orig_width"), "original_height": row.get("orig_height"),
        "sha256": row.get("sha256"), "status": "success", "error_message": None,
        "uid": row.get("uid"), "page_url": row.get("page_url"), "source": row.get("source"),
        "query_ids": row.get("query_ids"),
        "phash": None if ph is None else f"{int(ph):0{PHASH_HEX_DIGITS}x}",
    }
    return meta
