"""Dedupe's second job: the in-set near-duplicate pre-pass, a global exact reduce over all descriptors.

``near_duplicates`` orders rows by uid and marks every row that has an identical pixel hash or a pHash
within ``within_threshold`` of an earlier row: the first of each group is kept (multi-index hashing,
exact, through ``wit.imagehash.mih``). Written to ``OUT/_near_duplicates.parquet`` as (uid, dup_of, part),
sorted by part (the dedupe task that holds the row), so each task reads only its own rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.dedupe.describe import descriptor_files, descriptor_part
from wit.imagehash import mih
from wit.io import folders

NEAR_DUPS = "_near_duplicates.parquet"
NEAR = pa.schema([("uid", pa.string()), ("dup_of", pa.string()), ("part", pa.int32())])


def read_descriptors(url: str, columns: list[str]) -> pa.Table:
    """``columns`` of one descriptor file's described rows (no decode error), with its ``part``."""
    t = folders.read_parquet([url], columns=[*columns, "error"])
    t = t.filter(pc.equal(t.column("error"), "")).drop_columns(["error"])
    return t.append_column("part", pa.array(np.full(t.num_rows, descriptor_part(url), np.int32)))


def near_duplicates(out: str, threshold: int, method: str = "auto") -> pa.Table:
    """(uid, dup_of, part) for every row with an earlier (by uid) identical or pHash-near row; cached in OUT."""
    target = folders.join(out, NEAR_DUPS)
    if folders.exists(target):
        return folders.read_parquet([target])
    tables = [read_descriptors(f, ["uid", "pixel_xxh3", "phash"]) for f in descriptor_files(out)]
    t = pa.concat_tables(tables).sort_by("uid") if tables else NEAR.empty_table()
    if not tables:
        folders.write_parquet(target, t)
        return t
    dup_of = earlier_duplicates(t.column("pixel_xxh3"), t.column("phash").to_numpy().astype(np.uint64),
                                threshold, method=method)
    sel = pa.array(np.nonzero(dup_of >= 0)[0])
    uids = t.column("uid")
    res = pa.table({"uid": uids.take(sel).cast(pa.string()),
                    "dup_of": uids.take(pa.array(dup_of[dup_of >= 0])).cast(pa.string()),
                    "part": t.column("part").take(sel)}, schema=NEAR)
    res = res.sort_by([("part", "ascending"), ("uid", "ascending")])
    folders.write_parquet(target, res, row_group_size=folders.PART_ROW_GROUP)
    return res


def earlier_duplicates(pixel_xxh3, phash: np.ndarray, threshold: int, method: str = "auto") -> np.ndarray:
    """Per row, the earlier row it duplicates, or -1: the first row with the same pixel hash, else
    the earlier row of least pHash distance within ``threshold`` (lowest row on ties).

    ``method``: "brute" (block scan, O(n^2)), "mih" (multi-index hashing) or "auto" (MIH unless
    ``mih.choose_m`` finds a scan cheaper: small n or a threshold too wide to prune)."""
    n = len(phash)
    if not isinstance(pixel_xxh3, (pa.Array, pa.ChunkedArray)):
        pixel_xxh3 = pa.array(pixel_xxh3, pa.string())
    if isinstance(pixel_xxh3, pa.ChunkedArray):
        pixel_xxh3 = pixel_xxh3.combine_chunks()
    codes = pc.dictionary_encode(pixel_xxh3, null_encoding="encode").indices.to_numpy(zero_copy_only=False)
    # unique's return_index is each code's first position
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    first = first[inverse]
    by_pixels = np.where(first != np.arange(n), first, -1)
    threshold = min(int(threshold), 64)  # wider matches everything anyway
    if method == "auto":
        method = "mih" if mih.choose_m(n, threshold) is not None else "brute"
    by_phash = _earlier_phash_mih(phash, threshold) if method == "mih" else mih.earlier_nearest_brute(phash, threshold)
    return np.where(by_pixels >= 0, by_pixels, by_phash)


def _earlier_phash_mih(ph: np.ndarray, threshold: int) -> np.ndarray:
    """``mih.earlier_nearest_brute`` by multi-index hashing: same rows, ties included, sublinear per row."""
    n = len(ph)
    if n == 0 or threshold < 0:
        return np.full(n, -1, dtype=np.int64)
    m = mih.choose_m(n, threshold) or mih.M_CHOICES[-1]
    best, _ = mih.MultiIndex(ph, m).earlier_nearest(threshold)
    return best
