"""Within-set near-duplicates across machines: exact multi-index hashing partitioned by substring.

The single-node pass (``dedupe.near.near_duplicates``) marks each row (in uid order) whose
pixels equal an earlier row's, else its least-distance earlier row within ``threshold`` pHash bits
(lowest uid on ties). Here, as in docs/capacity.md:

* pixel duplicates: rows hash-partitioned by pixel hash; each group's least uid is the original;
* pHash: the 64 bits split into ``m`` substrings; partition (k, r) indexes the rows whose substring
  k falls in value range r and receives, as queries, the rows with a neighbour value (within
  ``threshold // m`` bits) in that range. A row's MIH candidates are the union over partitions, so
  the least (distance, uid) over every partition's answer is the single-node answer, exactly;
* a last reduce by uid takes that minimum, the pixel duplicate first, and sends each row to the
  block of parts (dedupe tasks) it belongs to, so the file is written sorted by part.

No task holds more than one partition: ``rows_per_partition`` sets how many ranges each
substring is cut into.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from wit.imagehash import mih
from wit.distributed import shuffle as sh
from wit.distributed.global_ops import _concat, _hash_mod, _split, _split_by_part, part_blocks, write_by_part
from wit.distributed.shuffle import ShuffleConfig
from wit.io import folders

_HITS = pa.schema([("uid", pa.string()), ("dup_of", pa.string()), ("dist", pa.int64()), ("part", pa.int32())])
STEP = "dedupe: near-duplicates"


def _read(path: str, column: str) -> pa.Table:
    from wit.dedupe.near import read_descriptors

    return read_descriptors(path, ["uid", column])


def _hits(uid, dup_of, dist, part, f: int) -> list[pa.Table]:
    t = pa.table({"uid": pa.array(uid, pa.string()), "dup_of": pa.array(dup_of, pa.string()),
                  "dist": pa.array(dist, pa.int64()), "part": pa.array(part, pa.int32())}, schema=_HITS)
    return _split(t, _hash_mod(t.column("uid"), f), f)


def _pixel_map(path: str, p: int) -> list[pa.Table]:
    t = _read(path, "pixel_xxh3")
    return _split(t, _hash_mod(t.column("pixel_xxh3"), p), p)


def _pixel_reduce(j: int, tables: list[pa.Table], f: int) -> list[pa.Table]:
    import duckdb

    con = duckdb.connect()
    con.register("t", _concat(tables))
    d = con.sql("""SELECT uid, first, part FROM (
                     SELECT uid, part, min(uid) OVER (PARTITION BY pixel_xxh3) AS first FROM t)
                   WHERE uid <> first""").to_arrow_table()
    # distance -1: a pixel duplicate wins over any pHash neighbour
    return _hits(d.column("uid"), d.column("first"), np.full(d.num_rows, -1), d.column("part"), f)


def _substring(h: np.ndarray, shift: int, width: int) -> np.ndarray:
    return ((h >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)


def _span(width: int, ranges: int) -> int:
    return -(-(1 << width) // ranges)


def _mih_map(path: str, p: int, m: int, ranges: int, threshold: int) -> list[pa.Table]:
    t = _read(path, "phash")
    h = t.column("phash").to_numpy().astype(np.uint64)
    r = threshold // m
    rows, dest, role = [], [], []
    for k, (shift, width) in enumerate(mih.split_bits(m)):
        v, span = _substring(h, shift, width), _span(width, ranges)
        rows.append(np.arange(len(h)))
        dest.append(k * ranges + v // span)
        role.append(np.zeros(len(h), np.int8))
        nb = np.sort((v[:, None] ^ mih.flip_masks(width, r)[None, :]) // span, axis=1)
        first = np.ones(nb.shape, bool)
        first[:, 1:] = nb[:, 1:] != nb[:, :-1]
        qi, ci = np.nonzero(first)
        rows.append(qi)
        dest.append(k * ranges + nb[qi, ci])
        role.append(np.ones(len(qi), np.int8))
    rows, dest = np.concatenate(rows), np.concatenate(dest)
    out = t.take(pa.array(rows)).append_column("role", pa.array(np.concatenate(role)))
    return _split(out, dest, p)


def _mih_reduce(j: int, tables: list[pa.Table], m: int, ranges: int, threshold: int, f: int,
                block: int = 1 << 16) -> list[pa.Table]:
    t = _concat(tables)
    k, rr = divmod(j, ranges)
    shift, width = mih.split_bits(m)[k]
    masks = mih.flip_masks(width, threshold // m)
    span = _span(width, ranges)
    role = t.column("role").to_numpy()
    uids = t.column("uid").to_numpy(zero_copy_only=False)
    parts = t.column("part").to_numpy()
    h = t.column("phash").to_numpy().astype(np.uint64)
    # ranks over this partition's uids: the uid order of the single-node pass, locally
    names, rank = np.unique(uids, return_inverse=True)
    ix, qx = np.flatnonzero(role == 0), np.flatnonzero(role == 1)
    iv = _substring(h[ix], shift, width)
    order = np.argsort(iv, kind="stable")
    sv, sh_, sr = iv[order], h[ix][order], rank[ix][order]
    lo, hi = rr * span, (rr + 1) * span
    q_uid, q_best = [], []
    for a in range(0, len(qx), block):
        q = qx[a:a + block]
        qh, qr = h[q], rank[q]
        vals = _substring(qh, shift, width)[:, None] ^ masks[None, :]
        qi, ci = np.nonzero((vals >= lo) & (vals < hi))
        v = vals[qi, ci]
        start = np.searchsorted(sv, v, side="left")
        count = np.searchsorted(sv, v, side="right") - start
        end = np.cumsum(count)
        total = int(end[-1]) if len(end) else 0
        if not total:
            continue
        pos = np.arange(total, dtype=np.int64) + np.repeat(start - (end - count), count)
        qq = np.repeat(qi, count)
        d = np.bitwise_count(qh[qq] ^ sh_[pos]).astype(np.int64)
        ok = (d <= threshold) & (sr[pos] < qr[qq])
        key = np.full(len(q), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(key, qq[ok], (d[ok] << 32) | sr[pos][ok])
        hit = np.flatnonzero(key != np.iinfo(np.int64).max)
        q_uid.append(q[hit])
        q_best.append(key[hit])
    qs = np.concatenate(q_uid) if q_uid else np.empty(0, np.int64)
    best = np.concatenate(q_best) if q_best else np.empty(0, np.int64)
    return _hits(uids[qs].tolist(), names[best & 0xFFFFFFFF].tolist(), (best >> 32).tolist(), parts[qs], f)


def _final_reduce(j: int, tables: list[pa.Table], blocks: int, per: int) -> list[pa.Table]:
    import duckdb

    from wit.dedupe.near import NEAR

    con = duckdb.connect()
    con.register("t", _concat(tables))
    t = con.sql("SELECT uid, arg_min(dup_of, (dist, dup_of)) AS dup_of, min(part) AS part FROM t GROUP BY uid"
                ).to_arrow_table().cast(NEAR)
    return _split_by_part(t, blocks, per)


def plan(n_rows: int, threshold: int, rows_per_partition: int) -> tuple[int, int]:
    """(m substrings, value ranges per substring) for ``n_rows`` rows: m as the single-node pass picks it."""
    m = mih.choose_m(n_rows, threshold) or mih.M_CHOICES[-1]
    width = min(w for _, w in mih.split_bits(m))
    return m, int(min(1 << width, max(1, math.ceil(n_rows / max(1, rows_per_partition)))))


def near_duplicates(out: str, threshold: int, runner: str = "local", address: str | None = None,
                    cfg: ShuffleConfig | None = None, **_) -> int:
    """``dedupe.near.near_duplicates`` (cached in OUT); returns how many rows it marks."""
    from wit.dedupe import near
    from wit.dedupe.describe import descriptor_files, descriptor_part

    target = folders.join(out, near.NEAR_DUPS)
    if runner == "ray" and folders.exists(target):
        return sh.parquet_rows([target])
    if runner != "ray":
        return near.near_duplicates(out, threshold).num_rows
    files = descriptor_files(out)
    if not files:
        return near.near_duplicates(out, threshold).num_rows
    sh.ensure(address)
    cfg = sh.resolve(cfg)
    threshold = min(int(threshold), 64)
    n = sh.parquet_rows(files)
    f = sh.partitions_for(cfg, n)
    blocks, per = part_blocks(max(descriptor_part(u) for u in files) + 1, f)
    with sh.through_files(out):
        parts = [sh.shuffle(STEP, files, _pixel_map, _pixel_reduce, cfg, reduce_args=(f,), fanout=f)]
        if threshold >= 0:
            m, ranges = plan(n, threshold, cfg.rows_per_partition)
            parts.append(sh.shuffle(STEP, files, _mih_map, _mih_reduce, cfg, partitions=m * ranges,
                                    map_args=(m, ranges, threshold), reduce_args=(m, ranges, threshold, f), fanout=f))
        refs = sh.regroup(STEP, [r for p in parts for r in p], _final_reduce, cfg, reduce_args=(blocks, per),
                          fanout=blocks)
        return write_by_part(STEP, target, refs, near.NEAR, cfg)
