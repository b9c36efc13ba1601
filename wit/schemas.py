"""The pyarrow schema of every stage's output (the run-directory contract, docs/pipelines.md)."""

from __future__ import annotations

import pyarrow as pa

QUERIES = pa.schema(
    [
        ("query_id", pa.int32()),
        ("query", pa.string()),
        ("source", pa.string()),
        ("score", pa.float64()),
    ]
)

CANDIDATES = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("page_url", pa.string()),
        ("source", pa.string()),
    ]
)

MATCHED = CANDIDATES.append(pa.field("query_ids", pa.list_(pa.int32())))

ENTRY_COUNTS = pa.schema([("query_id", pa.int32()), ("count", pa.int64())])

# The URL list handed to download is the matched schema (balance only drops rows).
BALANCED = MATCHED

LEDGER = pa.schema(
    [
        ("uid", pa.string()),
        ("stage", pa.string()),
        ("status", pa.string()),  # "kept" | "dropped"
        ("reason", pa.string()),  # "" when kept; a code of wit.reasons.REASONS when dropped
        ("detail", pa.string()),  # "" or what varies per row (eval_duplicate: "<set>:<item>")
    ]
)

DROPS = pa.schema([("uid", pa.string()), ("reason", pa.string()), ("detail", pa.string())])


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``table``'s columns to ``schema`` (extra columns are kept after them)."""
    cols = []
    for field in schema:
        if field.name not in table.column_names:
            raise ValueError(f"missing column {field.name!r}; have {table.column_names}")
        cols.append(table.column(field.name).cast(field.type))
    extra = [n for n in table.column_names if n not in schema.names]
    return pa.Table.from_arrays(
        cols + [table.column(n) for n in extra],
        schema=pa.schema(list(schema) + [table.schema.field(n) for n in extra]),
    )

# download: the balanced columns + the stored image (resized, re-encoded), its geometry and its
# descriptors, computed while download has the pixels decoded: pHash and the mirror image's pHash
# (of the resized image), and pixel_xxh3 (of the full-resolution decode, as the eval index hashes).
# Null descriptors (input written before they existed) make filter and dedupe decode the stored JPEG.
# Appended later: the centre-region pHash and its mirror's (descriptors.image_hashes, of the same
# resized image as phash), which dedupe's centre matching reads instead of decoding the JPEG.
DESCRIPTOR_FIELDS = [pa.field("phash", pa.uint64()), pa.field("phash_flip", pa.uint64()),
                     pa.field("pixel_xxh3", pa.string()),
                     pa.field("phash_centre", pa.uint64()), pa.field("phash_centre_flip", pa.uint64()),
                     # pHash inside the edge bands (padding, caption bands); null where the image has none
                     pa.field("phash_trimmed", pa.uint64())]
DOWNLOADED = pa.schema(list(BALANCED) + [
    pa.field("key", pa.string()), pa.field("jpg", pa.binary()),
    pa.field("width", pa.int32()), pa.field("height", pa.int32()),
    pa.field("orig_width", pa.int32()), pa.field("orig_height", pa.int32()),
    pa.field("sha256", pa.string()),
] + DESCRIPTOR_FIELDS)

# filter keeps DOWNLOADED; dedupe fills in any missing descriptors.
FILTERED = DOWNLOADED
DEDUPED = DOWNLOADED

# dedupe index: one "image" row per eval image plus its variant rows (crop, rotate, rotate_crop:
# whole-image pHashes of transformed copies; centre: the centre-region pHash), pixel hash "" on those.
EVAL_INDEX = pa.schema([("set", pa.string()), ("item", pa.string()), ("pixel_xxh3", pa.string()),
                        ("phash", pa.uint64()), ("variant", pa.string())])

# One row per sample of a shard tar (RUN/shards/NNNNN.parquet): img2dataset's columns first (sha256 of the
# downloaded bytes; status always "success", failures live in the ledger), then wit's; pHash as 16-digit hex.
SHARD = pa.schema([
    ("key", pa.string()), ("url", pa.string()), ("caption", pa.string()),
    ("width", pa.int32()), ("height", pa.int32()), ("original_width", pa.int32()), ("original_height", pa.int32()),
    ("sha256", pa.string()), ("status", pa.string()), ("error_message", pa.string()),
    ("uid", pa.string()), ("phash", pa.string()), ("query_ids", pa.list_(pa.int32())),
    ("page_url", pa.string()), ("source", pa.string()), ("shard", pa.string()),
])

# overlap: one row per training image of the shards analysed (its pHash, 16-digit hex, and where it lives).
TRAIN_HASHES = pa.schema([("uid", pa.string()), ("shard", pa.string()), ("key", pa.string()), ("phash", pa.string())])
# with dedupe's copy detector: the eval image each training image copies ("" where none) and the descriptor
TRAIN_MATCH_FIELDS = [pa.field("eval_set", pa.string()), pa.field("eval_item", pa.string()),
                      pa.field("eval_match_by", pa.string())]
