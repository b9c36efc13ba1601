"""The global steps, each with ``runner="local"`` (its single-process twin) or ``runner="ray"`` (a shuffle).

Every "ray" version gives the same rows as its twin (tests assert it); files whose row order does
not matter to their readers (duplicates, near-duplicates) may list them in partition order. The
driver keeps object references, per-entry tables (bounded by the query list, not the input) and
one partition at a time while writing a result file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wit import schemas
from wit.distributed import shuffle as sh
from wit.distributed.shuffle import ShuffleConfig
from wit.io import folders

def _read(url: str, columns: list[str]) -> pa.Table | None:
    """``columns`` of one Parquet file, local or remote (through fsspec on the worker); None for a file
    without rows that lacks them (a part whose stage kept nothing, written before its columns were kept)."""
    fs, path = folders.fs_and_path(url)
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        if pf.metadata.num_rows == 0 and not set(columns) <= set(pf.schema_arrow.names):
            return None
        return pf.read(columns=columns)


def _folder_of(url: str) -> str:
    """The folder holding the file ``url``: where a step's shuffle files go (``shuffle.through_files``)."""
    return url.rstrip("/").rsplit("/", 1)[0]


def _nothing(p: int, schema: pa.Schema) -> list[pa.Table]:
    return [schema.empty_table() for _ in range(p)]


def _hash_mod(keys: pa.Array | pa.ChunkedArray, p: int) -> np.ndarray:
    """A deterministic partition number per key (DuckDB's hash), identical on every worker."""
    if p == 1:
        return np.zeros(len(keys), np.int64)
    con = duckdb.connect()
    con.register("k", pa.table({"k": keys}))
    return con.execute("SELECT (hash(k) % ?)::BIGINT AS b FROM k", [int(p)]).fetchnumpy()["b"].astype(np.int64)


def _split(t: pa.Table, part: np.ndarray, p: int) -> list[pa.Table]:
    order = np.argsort(part, kind="stable")
    t = t.take(pa.array(order))
    bounds = np.searchsorted(part[order], np.arange(p + 1))
    return [t.slice(int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])]


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows] or tables[:1]
    return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


def _write_stream(url: str, tables, schema: pa.Schema, row_group_size: int | None = None) -> int:
    """Write tables one at a time into one Parquet file at ``url`` (atomically); return the row count."""
    fs, path = folders.fs_and_path(url)
    parent = path.rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = folders._tmp_name(path)
    n = 0
    with fs.open(tmp, "wb") as f, pq.ParquetWriter(f, schema, **folders.parquet_options(schema)) as w:
        for t in tables:
            if t.num_rows:
                w.write_table(t.cast(schema), row_group_size=row_group_size)
                n += t.num_rows
    fs.mv(tmp, path)
    return n


# -- files read one part at a time (duplicates, near-duplicates) ------------------------------------

def part_blocks(n_parts: int, partitions: int) -> tuple[int, int]:
    """(blocks, parts per block): contiguous ranges of part numbers, one reduce task each."""
    per = max(1, -(-n_parts // max(1, partitions)))
    return max(1, -(-n_parts // per)), per


def _split_by_part(t: pa.Table, blocks: int, per: int) -> list[pa.Table]:
    return _split(t, t.column("part").to_numpy().astype(np.int64) // per, blocks)


def _sorted_by_part(j: int, tables: list[pa.Table]) -> pa.Table:
    return _concat(tables).sort_by([("part", "ascending"), ("uid", "ascending")])


def write_by_part(step: str, url: str, refs: list, schema: pa.Schema, cfg: ShuffleConfig) -> int:
    """Write the fan-out ``refs`` (output j of every task: the rows of part block j) as one file sorted
    by (part, uid) in row groups of ``folders.PART_ROW_GROUP``, one block in the driver at a time, so
    a stage task reads its part's rows with ``folders.read_part`` and nothing more."""
    blocks = sh.regroup(step, refs, _sorted_by_part, cfg)
    return _write_stream(url, sh.results(step, blocks), schema, row_group_size=folders.PART_ROW_GROUP)


# -- uid duplicate pre-pass (match) -------------------------------------------------------------

DUPLICATES = pa.schema([("uid", pa.string()), ("part", pa.int32())])


def _dups_map(item: tuple[int, str], p: int) -> list[pa.Table]:
    i, path = item
    t = _read(path, ["uid"])
    if t is None:
        return _nothing(p, DUPLICATES)
    uids = t.column("uid").cast(pa.string())
    t = pa.table({"uid": uids, "part": pa.array(np.full(len(uids), i, np.int32))})
    return _split(t, _hash_mod(uids, p), p)


def _dups_reduce(j: int, tables: list[pa.Table], blocks: int, per: int) -> list[pa.Table]:
    con = duckdb.connect()
    con.register("t", _concat(tables))
    out = con.sql("""SELECT uid, part FROM (SELECT uid, part, min(part) OVER (PARTITION BY uid) AS first FROM t)
                     WHERE part > first""").to_arrow_table()
    return _split_by_part(out.cast(DUPLICATES), blocks, per)


def write_later_duplicates(inputs: list[str], url: str, runner: str = "local", address: str | None = None,
                           cfg: ShuffleConfig | None = None, **_) -> int:
    """``match.counts.later_duplicates(inputs)`` written to ``url``; returns its row count."""
    if runner != "ray":
        from wit.match.counts import later_duplicates

        t = later_duplicates(inputs)
        folders.write_parquet(url, t, row_group_size=folders.PART_ROW_GROUP)
        return t.num_rows
    sh.ensure(address)
    step = "match: uid duplicates"
    blocks, per = part_blocks(len(inputs), sh.partitions_for(cfg, sh.parquet_rows(inputs)))
    with sh.through_files(_folder_of(url)):
        refs = sh.shuffle(step, list(enumerate(inputs)), _dups_map, _dups_reduce, cfg, reduce_args=(blocks, per),
                          fanout=blocks)
        return write_by_part(step, url, refs, DUPLICATES, cfg)


# -- entry counts (match, balance pre and final pass) ---------------------------------------------

def _counts_map(path: str, p: int) -> list[pa.Table]:
    t = _read(path, ["query_ids"])
    if t is None:
        return _nothing(p, schemas.ENTRY_COUNTS)
    con = duckdb.connect()
    con.register("t", t)
    t = con.sql("SELECT q AS query_id, count(*) AS count FROM (SELECT unnest(query_ids) AS q FROM t) GROUP BY q"
                ).to_arrow_table()
    q = t.column("query_id").to_numpy().astype(np.int64)
    return _split(t, q % p, p)


def _counts_reduce(j: int, tables: list[pa.Table]) -> pa.Table:
    con = duckdb.connect()
    con.register("t", _concat(tables))
    return con.sql("SELECT query_id, sum(count)::BIGINT AS count FROM t GROUP BY query_id").to_arrow_table()


def entry_counts(parts: str | list[str], runner: str = "local", address: str | None = None,
                 cfg: ShuffleConfig | None = None, **_) -> pa.Table:
    """``match.counts.entry_counts``: (query_id, count) over every row of ``parts``, sorted by query_id."""
    from wit.match import counts

    files = counts.part_files(parts)
    if runner != "ray" or not files:
        return counts.entry_counts(files)
    sh.ensure(address)
    with sh.through_files(_folder_of(files[0])):
        refs = sh.shuffle("entry counts", files, _counts_map, _counts_reduce, cfg)
        t = _concat([schemas.conform(r, schemas.ENTRY_COUNTS) for r in sh.results("entry counts", refs)])
    return schemas.conform(t.sort_by("query_id"), schemas.ENTRY_COUNTS)


def write_entry_counts(parts: str | list[str], url: str, **kw) -> pa.Table:
    t = entry_counts(parts, **kw)
    folders.write_parquet(url, t)
    return t


# -- hard-cap thresholds (balance) ------------------------------------------------------------------

def _lowest(qid: np.ndarray, coin: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` lowest coins of each entry (all of them where it has fewer)."""
    order = np.lexsort((coin, qid))
    q, c = qid[order], coin[order]
    start = np.searchsorted(q, q, side="left")
    keep = (np.arange(len(q)) - start) < k
    return q[keep], c[keep]


def _hardcap_map(path: str, p: int, counts: pa.Table, cap: int, seed: int) -> list[pa.Table]:
    from wit.balance import algorithm

    lookup = algorithm.count_lookup(counts)
    t = _read(path, ["uid", "query_ids"])
    if t is None:
        return _nothing(p, pa.schema([("query_id", pa.int64()), ("coin", pa.float64()), ("n", pa.int64())]))
    att = algorithm.attribute(t.column("query_ids").combine_chunks(), lookup)
    sel = np.flatnonzero((att >= 0) & (algorithm._count_of(lookup, att) > cap))
    uids = t.column("uid").take(pa.array(sel)).to_pylist()
    qid, coin = att[sel], algorithm.hardcap_coins(uids, att[sel], seed)
    ent, n = np.unique(qid, return_counts=True)
    lq, lc = _lowest(qid, coin, cap)
    # per entry: its attributed pairs here (n, on one row) and its cap lowest coins (n = 0 rows)
    t = pa.table({"query_id": np.concatenate([ent, lq]), "coin": np.concatenate([np.full(len(ent), np.nan), lc]),
                  "n": np.concatenate([n, np.zeros(len(lq), np.int64)])})
    return _split(t, t.column("query_id").to_numpy() % p, p)


def _hardcap_reduce(j: int, tables: list[pa.Table], cap: int) -> pa.Table:
    t = _concat(tables)
    q, c, n = (t.column(k).to_numpy() for k in ("query_id", "coin", "n"))
    ent, inv = np.unique(q, return_inverse=True)
    total = np.bincount(inv, weights=n, minlength=len(ent))
    coins = ~np.isnan(c)
    lq, lc = _lowest(q[coins], c[coins], cap)
    over = ent[total > cap]
    last = np.searchsorted(lq, over, side="right") - 1  # the cap-th lowest: the last one kept
    return pa.table({"query_id": pa.array(over.astype(np.int32)), "threshold": pa.array(lc[last], pa.float64())})


def hardcap_thresholds(parts: list[str], counts: pa.Table, cap: int, seed: int, runner: str = "local",
                       address: str | None = None, cfg: ShuffleConfig | None = None, **_) -> pa.Table:
    """``balance.run.hardcap_thresholds``: per entry with more than ``cap`` attributed pairs, its cap-th lowest coin.

    Each map task sends, per entry, its pair count and only its ``cap`` lowest coins, so a reduce
    task holds at most (map tasks x cap) coins per entry of its partition."""
    if runner != "ray":
        from wit.balance.job import hardcap_thresholds as local

        return local(parts, counts, cap, seed)
    import ray

    sh.ensure(address)
    step = "balance: hard-cap thresholds"
    with sh.through_files(_folder_of(parts[0])):
        refs = sh.shuffle(step, parts, _hardcap_map, _hardcap_reduce, cfg, map_args=(ray.put(counts), cap, seed),
                          reduce_args=(cap,))
        t = _concat(list(sh.results(step, refs))).sort_by("query_id")
    return pa.table({"query_id": t.column("query_id").cast(pa.int32()),
                     "threshold": t.column("threshold").cast(pa.float64())})


# -- counts by a column (balance statistics) ------------------------------------------------------

def _value_counts(paths: list[str], column: str) -> pa.Table:
    """(value, n) of ``column`` over Parquet ``paths`` (read through fsspec; no name in SQL text)."""
    tables = [t for t in (_read(p, [column]) for p in paths) if t is not None]
    if not tables:
        return pa.table({"value": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    vc = pa.concat_tables(tables).column(column).combine_chunks().value_counts()
    return pa.table({"value": vc.field("values"), "n": vc.field("counts").cast(pa.int64())})


def _by_map(path: str, p: int, column: str) -> list[pa.Table]:
    t = _value_counts([path], column)
    return _split(t, _hash_mod(t.column("value"), p), p)


def _by_reduce(j: int, tables: list[pa.Table]) -> pa.Table:
    con = duckdb.connect()
    con.register("t", _concat(tables))
    return con.sql("SELECT value, sum(n)::BIGINT AS n FROM t GROUP BY value").to_arrow_table()


def count_by(parts: list[str], column: str, runner: str = "local", address: str | None = None,
             cfg: ShuffleConfig | None = None, **_) -> dict:
    """{value: rows} of ``column`` over ``parts`` (few distinct values: sources, stages)."""
    if not parts:
        return {}
    if runner != "ray":
        t = _value_counts(parts, column)
        return dict(zip(t.column("value").to_pylist(), t.column("n").to_pylist()))
    sh.ensure(address)
    out: dict = {}
    with sh.through_files(_folder_of(parts[0])):
        refs = sh.shuffle(f"count by {column}", parts, _by_map, _by_reduce, cfg, map_args=(column,))
        for t in sh.results(f"count by {column}", refs):
            out.update(zip(t.column("value").to_pylist(), t.column("n").to_pylist()))
    return out


# -- ledger summary ----------------------------------------------------------------------------------

def _ledger_map(path: str, p: int) -> list[pa.Table]:
    t = _read(path, ["uid", "stage", "status", "reason"])
    if t is None:
        return _nothing(p, _LEDGER_SHUFFLE)
    con = duckdb.connect()
    con.register("t", t)
    # partition 0 also carries the (stage, status, reason) counts; a kind column keeps them apart. Older
    # ledgers carried a detail after a colon; count them under their code, as io.ledger does.
    groups = con.sql("""SELECT 'group' AS kind, stage, status, split_part(reason, ':', 1) AS reason, '' AS uid,
                               count(*) AS n FROM t GROUP BY stage, status, split_part(reason, ':', 1)"""
                     ).to_arrow_table().cast(_LEDGER_SHUFFLE)
    kept = con.sql("SELECT 'uid' AS kind, stage, '' AS status, '' AS reason, uid, 1::BIGINT AS n FROM t "
                   "WHERE status = 'kept'").to_arrow_table().cast(_LEDGER_SHUFFLE)
    con.close()
    out = _split(kept, _hash_mod(kept.column("uid"), p), p)
    out[0] = pa.concat_tables([out[0], groups])
    return out


_LEDGER_SHUFFLE = pa.schema([("kind", pa.string()), ("stage", pa.string()), ("status", pa.string()),
                             ("reason", pa.string()), ("uid", pa.string()), ("n", pa.int64())])


def _ledger_reduce(j: int, tables: list[pa.Table]) -> pa.Table:
    con = duckdb.connect()
    con.register("t", _concat(tables))
    return con.sql("""SELECT 'group' AS kind, stage, status, reason, sum(n)::BIGINT AS n FROM t WHERE kind = 'group'
                        GROUP BY ALL
                      UNION ALL
                      SELECT 'dups', stage, '', '', count(*) FROM (
                        SELECT stage, uid FROM t WHERE kind = 'uid' GROUP BY stage, uid HAVING count(*) > 1)
                        GROUP BY stage""").to_arrow_table()


def summarize_ledger(ledger_dir: str, runner: str = "local", address: str | None = None,
                     cfg: ShuffleConfig | None = None, **_) -> dict:
    """``io.ledger.summarize``: per-stage counts and uids kept more than once, from the ledger parts."""
    from wit.io import ledger

    files = folders.list_named(ledger_dir, ledger._PART)
    if runner != "ray" or not files:
        return ledger.summarize(ledger_dir)
    sh.ensure(address)
    groups: list[tuple] = []
    dups: dict[str, int] = {}
    with sh.through_files(ledger_dir):
        refs = sh.shuffle("ledger summary", files, _ledger_map, _ledger_reduce, cfg)
        for t in sh.results("ledger summary", refs):
            for kind, stage, status, reason, n in zip(*(t.column(k).to_pylist() for k in
                                                        ("kind", "stage", "status", "reason", "n"))):
                if kind == "dups":
                    dups[stage] = dups.get(stage, 0) + n
                else:
                    groups.append((stage, status, reason, n))
    out = ledger.checks_from_counts(groups, dups)
    out = dict(sorted(out.items()))
    for c in out.values():
        c.by_reason = dict(sorted(c.by_reason.items()))
    return out


# -- shard assignment ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Chunk:
    index: int
    url: str
    pieces: tuple[tuple[str, int, int], ...]  # (input, first row, rows)


def _chunk_task(chunk: _Chunk, p: int) -> list[pa.Table]:
    tables = []
    for path, start, n in chunk.pieces:
        fs, local = folders.fs_and_path(path)
        with fs.open(local, "rb") as fh:
            f = pq.ParquetFile(fh)
            # read only the row groups that hold rows start..start+n
            first, rows, groups = 0, [], []
            for g in range(f.num_row_groups):
                m = f.metadata.row_group(g).num_rows
                if first + m > start and first < start + n:
                    groups.append(g)
                    rows.append(first)
                first += m
            t = f.read_row_groups(groups)
        tables.append(t.slice(start - rows[0], n))
    folders.write_parquet(chunk.url, pa.concat_tables(tables, promote_options="default"))
    return [pa.table({"n": [sum(n for _, _, n in chunk.pieces)]})]


def make_chunks(inputs: list[str], out: str, samples_per_shard: int, runner: str = "local",
                address: str | None = None, cfg: ShuffleConfig | None = None, **_) -> list[str]:
    """``shard.stage.make_chunks``: rows regrouped in input order into chunks of ``samples_per_shard``.

    Each input's row count comes from its Parquet footer, so the driver plans every chunk as
    (input, first row, rows) pieces and one task per chunk reads only its row groups."""
    from wit.shard import stage

    if runner != "ray":
        return stage.make_chunks(inputs, out, samples_per_shard)
    done = folders.join(out, stage.CHUNKS, "_done.json")
    if folders.exists(done):
        return folders.read_json(done)["chunks"]
    sizes = [sh.parquet_rows([p]) for p in inputs]
    total = sum(sizes)
    chunks, starts = [], np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    for c in range(math.ceil(total / samples_per_shard)):
        a, b = c * samples_per_shard, min((c + 1) * samples_per_shard, total)
        pieces = []
        for i in np.flatnonzero((starts[1:] > a) & (starts[:-1] < b)):
            lo, hi = max(a, starts[i]), min(b, starts[i + 1])
            pieces.append((inputs[i], int(lo - starts[i]), int(hi - lo)))
        chunks.append(_Chunk(c, folders.join(out, stage.CHUNKS, f"_chunk-{c:05d}.parquet"), tuple(pieces)))
    sh.ensure(address)
    written = sum(t.column("n")[0].as_py() for t in sh.results("shard: chunks", sh.run_tasks("shard: chunks", chunks,
                                                                                             _chunk_task, cfg)))
    assert written == total, (written, total)
    paths = [c.url for c in chunks]
    folders.write_json(done, {"chunks": paths, "samples_per_shard": samples_per_shard})
    return paths
