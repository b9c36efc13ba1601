"""A hash-partitioned map/reduce on Ray tasks: the one place the global steps touch ray.

Map tasks read one input file each and return ``partitions`` Arrow tables (``num_returns``),
so rows travel worker to worker through the object store (spilled to disk under pressure) and
the driver holds only object references. Reduce task ``j`` receives partition ``j`` of every map
output. Task outputs are lineage-reconstructable: a node lost mid-stage costs re-running the
tasks whose outputs lived there, not the stage.

Inside ``through_files(ROOT)`` (every global step uses it, with ROOT a folder of the run that every
node can read), the pieces go through storage instead: each map task writes one Parquet file to
``ROOT/_shuffle/`` holding its partitions as row groups and returns only their row counts, so the
driver owns one object per map task, not one per (map task, partition): its memory does not grow
as the square of the input (measured: docs/BENCHMARKS.md, ``scale``). The files are removed when
the step leaves the block.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShuffleConfig:
    """``partitions``: reduce tasks per shuffle (None: enough that each gets about ``rows_per_partition``
    input rows, and at least 2 x cluster CPUs), so a reduce task's memory is set here, not by the
    input; ``attempts``: tries per task before the step fails (a killed worker or a raised error
    both count)."""

    partitions: int | None = None
    attempts: int = 3
    rows_per_partition: int = 2_000_000
    #: map tasks per merge round (see ``shuffle``)
    merge_fanin: int = 16


class GlobalStepError(RuntimeError):
    """A step failed: ``failure`` names the step, the task's input and the error (for run.json);
    ``failures`` lists every failed task when several did."""

    def __init__(self, step: str, task_input: str, error: str, failures: list[dict] | None = None):
        self.failure = {"step": step, "input": task_input, "error": error}
        self.failures = failures or [self.failure]
        more = f" (and {len(self.failures) - 1} more tasks)" if len(self.failures) > 1 else ""
        super().__init__(f"{step}: task on {task_input} failed: {error}{more}")

    def __reduce__(self):
        return GlobalStepError, (*self.failure.values(), self.failures)


_scopes: list[str] = []
#: how a task's full disk reads in its error text (str or repr of an ENOSPC OSError)
_ENOSPC = ("[Errno 28]", "OSError(28,", "No space left on device")
_numbers = itertools.count()


@contextmanager
def through_files(root: str):
    """Shuffles started inside pass their pieces through files in a fresh folder under
    ``ROOT/_shuffle/`` (removed on leaving, as is ``_shuffle`` once empty). ``root`` must be
    readable from every node: a folder of the run."""
    from wit.io import folders

    scratch = folders.join(root, folders.SHUFFLE, uuid.uuid4().hex[:12])
    _scopes.append(scratch)
    try:
        yield scratch
    except GlobalStepError as err:
        if any(e in f["error"] for f in err.failures for e in _ENOSPC):
            from wit.errors import StorageFull, disk_full_message

            raise StorageFull(disk_full_message(err.failure["step"], folders.join(root, folders.SHUFFLE))) from None
        raise
    finally:
        _scopes.remove(scratch)
        folders.remove_tree(scratch)
        fs, path = folders.fs_and_path(folders.join(root, folders.SHUFFLE))
        try:
            if fs.isdir(path) and not fs.ls(path):
                fs.rmdir(path)
        except OSError:  # another step's files appeared meanwhile
            pass


def resolve(cfg: ShuffleConfig | None) -> ShuffleConfig:
    """``cfg``, or this process's (the spec's ``ray:`` section, ``wit.runners.settings``)."""
    if cfg is not None:
        return cfg
    from wit.runners import settings

    return settings.current().shuffle


def partitions_for(cfg: ShuffleConfig | None, rows: int = 0) -> int:
    import ray

    cfg = resolve(cfg)
    if cfg.partitions:
        return int(cfg.partitions)
    return max(2 * int(ray.cluster_resources().get("CPU", 1)), -(-rows // max(1, cfg.rows_per_partition)))


def parquet_rows(files: list[str]) -> int:
    from wit.io import folders

    return folders.parquet_rows(files)


def _remote(fn: Callable, cfg: ShuffleConfig | None, num_returns: int = 1):
    import ray

    cfg = resolve(cfg)
    return ray.remote(fn).options(num_returns=num_returns, max_retries=max(0, cfg.attempts - 1),
                                  retry_exceptions=True, num_cpus=1)


def _release() -> None:
    """Hand freed memory back to the system after a task: a pooled worker runs many tasks."""
    from wit.runners.task import release_memory

    release_memory()


def _map_task(step: str, fn: Callable, item, partitions: int, *args):
    try:
        out = fn(item, partitions, *args)
    except Exception as err:  # noqa: BLE001 - re-raised with the input named; Ray retries it
        raise GlobalStepError(step, str(item), repr(err)) from err
    return out[0] if partitions == 1 else tuple(out)


def _reduce_task(step: str, fn: Callable, j: int, fanout: int, args: tuple, *tables: pa.Table):
    try:
        out = fn(j, list(tables), *args)
        if fanout == 1 and isinstance(out, list):
            out = out[0]
    except Exception as err:  # noqa: BLE001 - as above
        raise GlobalStepError(step, f"partition {j}", repr(err)) from err
    del tables
    _release()
    return out if fanout == 1 else tuple(out)


def _map_group(step: str, fn: Callable, group: tuple, p: int, *args):
    """``_map_task`` over several inputs, their outputs concatenated partition by partition."""
    outs = [_map_task(step, fn, item, p, *args) for item in group]
    out = _cat(outs) if p == 1 else tuple(_cat([o[j] for o in outs]) for j in range(p))
    _release()
    return out


def _cat(tables: list[pa.Table]) -> pa.Table:
    kept = [t for t in tables if t.num_rows] or tables[:1]
    return pa.concat_tables(kept, promote_options="default") if len(kept) > 1 else kept[0]


def map_groups(items: list, rows: list[int], rows_per_map: int) -> list[tuple]:
    """Consecutive ``items`` grouped so each map task reads about ``rows_per_map`` rows: a shuffle has
    (map tasks x partitions) pieces, each an object the driver owns (~2.4 KB of driver memory apiece,
    measured), so many small input files must not each be a map task."""
    groups: list[tuple] = []
    cur: list = []
    n = 0
    for item, r in zip(items, rows):
        cur.append(item)
        n += r
        if n >= rows_per_map:
            groups.append(tuple(cur))
            cur, n = [], 0
    if cur:
        groups.append(tuple(cur))
    return groups


def shuffle(step: str, items: list, map_fn: Callable, reduce_fn: Callable, cfg: ShuffleConfig | None, *,
            partitions: int | None = None, map_args: tuple = (), reduce_args: tuple = (), fanout: int = 1,
            scratch: str | None = None) -> list:
    """Object refs of ``reduce_fn(j, [map_fn(item, P)[j] for item in items])`` for j < P.

    ``map_fn(item, P, *map_args) -> list[pa.Table]`` of length P; ``reduce_fn(j, tables, *reduce_args)``
    returns a table (``fanout`` = 1) or ``fanout`` tables, to feed a further shuffle. Items (Parquet
    files, or ``(index, file)``) are grouped into map tasks of about ``rows_per_partition`` rows.
    With ``scratch``, or inside ``through_files``, pieces travel through files (the module's note);
    the map tasks have finished when this returns, and the files stay until the caller's results
    are in (``through_files`` removes them).
    """
    import ray

    cfg = resolve(cfg)
    rows = [parquet_rows([i[1] if isinstance(i, tuple) else i]) for i in items]
    p = partitions or partitions_for(cfg, sum(rows))
    groups = map_groups(items, rows, cfg.rows_per_partition)
    scratch = _scratch_for(scratch) if groups else None
    if scratch is not None:
        return _shuffle_via_files(step, groups, map_fn, reduce_fn, cfg, p, scratch, map_args, reduce_args, fanout)
    mapper = _remote(_map_group, cfg, num_returns=p)
    fanin = max(2, cfg.merge_fanin)
    if len(groups) <= fanin:
        maps = [mapper.remote(step, map_fn, g, p, *map_args) for g in groups]
        pieces = [[m] if p == 1 else m for m in maps]
    else:
        # Every piece (map task x partition) is an object the driver owns (~2.4 KB of driver memory
        # each): map tasks run in rounds of ``fanin`` whose pieces a merge task per partition joins,
        # and a round starts once the merges of the one before last are done, so at most two rounds
        # of pieces and one merged piece per round and partition are alive at once.
        merger = _remote(_merge_task, cfg)
        pieces, waiting = [], []
        for a in range(0, len(groups), fanin):
            maps = [mapper.remote(step, map_fn, g, p, *map_args) for g in groups[a:a + fanin]]
            maps = [[m] if p == 1 else m for m in maps]
            merged = [merger.remote(step, j, *[m[j] for m in maps]) for j in range(p)]
            del maps
            pieces.append(merged)
            waiting.append(merged)
            if len(waiting) > 1:
                done = waiting.pop(0)
                ray.wait(done, num_returns=len(done), fetch_local=False)
    reducer = _remote(_reduce_task, cfg, num_returns=fanout)
    return [reducer.remote(step, reduce_fn, j, fanout, reduce_args, *[m[j] for m in pieces]) for j in range(p)]


def _map_to_file(step: str, fn: Callable, group: tuple, p: int, url: str, *args) -> list[int]:
    """``_map_group`` whose P outputs go to one Parquet file at ``url``, one row group per partition
    that has rows, in partition order; returns the row count of each partition."""
    out = _map_group(step, fn, group, p, *args)
    try:
        return _write_pieces(url, [out] if p == 1 else list(out))
    except Exception as err:  # noqa: BLE001 - as in _map_task
        raise GlobalStepError(step, url, repr(err)) from err
    finally:
        del out
        _release()


def _write_pieces(url: str, tables: list[pa.Table]) -> list[int]:
    """``tables`` as one Parquet file at ``url``, one row group per table with rows, in order;
    returns each table's row count."""
    from wit.io import folders

    schema = next((t.schema for t in tables if t.num_rows), tables[0].schema)
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, **folders.parquet_options(schema, "lz4")) as w:
        for t in tables:
            if t.num_rows:
                w.write_table(t if t.schema == schema else t.select(schema.names).cast(schema),
                              row_group_size=t.num_rows)
    counts = [t.num_rows for t in tables]
    del tables
    folders.atomic_write_bytes(url, sink.getvalue())  # Arrow's buffer as it is: no copy into bytes
    return counts


def _read_pieces(urls: list[str], sources, row_groups) -> list[pa.Table]:
    """Row group ``row_groups[k]`` of file ``urls[sources[k]]`` for each k (file 0's empty schema when
    there are none)."""
    from wit.io import folders

    tables = []
    for i, g in zip(sources, row_groups) if len(sources) else [(0, None)]:
        fs, path = folders.fs_and_path(urls[int(i)])
        with fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f, pre_buffer=False)
            tables.append(pf.schema_arrow.empty_table() if g is None else pf.read_row_group(int(g)))
    return tables


def _reduce_files(step: str, fn: Callable, j: int, fanout: int, args: tuple, urls: list[str], sources, row_groups,
                  out_url: str | None = None):
    """``_reduce_task`` over partition ``j``'s pieces (``_read_pieces``); with ``out_url``, its
    ``fanout`` outputs go to that file (``_write_pieces``) and their row counts are returned."""
    try:
        tables = _read_pieces(urls, sources, row_groups)
    except Exception as err:  # noqa: BLE001 - as above
        raise GlobalStepError(step, f"partition {j}", repr(err)) from err
    out = _reduce_task(step, fn, j, fanout, args, *tables)
    del tables
    if out_url is None:
        return out
    try:
        return _write_pieces(out_url, [out] if fanout == 1 else list(out))
    except Exception as err:  # noqa: BLE001 - as above
        raise GlobalStepError(step, f"partition {j}", repr(err)) from err
    finally:
        del out
        _release()


@dataclass(frozen=True)
class FileFanout:
    """A reduce task's ``fanout`` outputs written to the file ``url`` (one row group per output with
    rows); ``ref`` resolves to their row counts. ``regroup`` reads them back by row group."""

    ref: object
    url: str


def _scratch_for(scratch: str | None) -> str | None:
    from wit.io import folders

    if scratch is None and _scopes:
        scratch = folders.join(_scopes[-1], f"{next(_numbers):06d}")
    if scratch is not None:
        folders.makedirs(scratch)
    return scratch


def _count_matrix(step: str, refs: list, width: int | None):
    """The row counts each task returned, as a (tasks x pieces) int32 matrix filled one task at a time
    (not a Python list of lists: at 2,500 x 2,500 that would be ~200 MB in the driver)."""
    import numpy as np

    out = None
    for i, c in enumerate(results(step, refs)):
        if out is None:
            out = np.zeros((len(refs), width or len(c)), np.int32)
        out[i] = c
    return out if out is not None else np.zeros((0, width or 0), np.int32)


def _from_files(step: str, reduce_fn: Callable, cfg: ShuffleConfig, urls: list[str], counts, reduce_args: tuple,
                fanout: int, scratch: str | None) -> list:
    """Reduce task j reads piece j of every file (``counts[i, j]`` rows in file i); with ``scratch``
    and ``fanout`` > 1 its outputs go to files too (``FileFanout``)."""
    import numpy as np
    import ray

    from wit.io import folders

    # row group of (file i, piece j): the pieces of file i before j that had rows
    group_of = np.cumsum(counts > 0, axis=1, dtype=np.int32) - 1
    to_files = scratch is not None and fanout > 1
    reducer = _remote(_reduce_files, cfg, num_returns=1 if to_files else fanout)
    urls_ref = ray.put(urls)  # one object, not one list per task
    refs = []
    for j in range(counts.shape[1]):
        sources = np.flatnonzero(counts[:, j]).astype(np.int32)
        out_url = folders.join(scratch, f"reduce-{j:05d}.shuffle") if to_files else None
        ref = reducer.remote(step, reduce_fn, j, fanout, reduce_args, urls_ref, sources,
                             group_of[sources, j].astype(np.int32), out_url)
        refs.append(FileFanout(ref, out_url) if to_files else ref)
    return refs


def _shuffle_via_files(step: str, groups: list[tuple], map_fn: Callable, reduce_fn: Callable, cfg: ShuffleConfig,
                       p: int, scratch: str, map_args: tuple, reduce_args: tuple, fanout: int) -> list:
    from wit.io import folders

    urls = [folders.join(scratch, f"map-{i:05d}.shuffle") for i in range(len(groups))]
    mapper = _remote(_map_to_file, cfg)
    counts = _count_matrix(step, [mapper.remote(step, map_fn, g, p, u, *map_args) for g, u in zip(groups, urls)], p)
    return _from_files(step, reduce_fn, cfg, urls, counts, reduce_args, fanout, scratch)


def _merge_task(step: str, j: int, *tables: pa.Table) -> pa.Table:
    """One partition's pieces of a round of map tasks, as one table."""
    try:
        out = _cat(list(tables))
    except Exception as err:  # noqa: BLE001 - as in _reduce_task
        raise GlobalStepError(step, f"partition {j}", repr(err)) from err
    del tables
    _release()
    return out


def regroup(step: str, refs: list, reduce_fn: Callable, cfg: ShuffleConfig | None, reduce_args: tuple = (),
            fanout: int = 1) -> list:
    """A further reduce over the fan-out of a previous one: ``refs[i][j]`` is output j of reduce task i;
    with ``fanout`` > 1 its own outputs fan out again, for one more ``regroup``."""
    if refs and isinstance(refs[0], FileFanout):
        counts = _count_matrix(step, [r.ref for r in refs], None)
        return _from_files(step, reduce_fn, cfg, [r.url for r in refs], counts, reduce_args, fanout,
                           _scratch_for(None) if fanout > 1 else None)
    reducer = _remote(_reduce_task, cfg, num_returns=fanout)
    fan = len(refs[0]) if refs and isinstance(refs[0], (list, tuple)) else 1
    refs = [[r] if fan == 1 else r for r in refs]
    return [reducer.remote(step, reduce_fn, j, fanout, reduce_args, *[r[j] for r in refs]) for j in range(fan)]


def run_tasks(step: str, items: list, fn: Callable, cfg: ShuffleConfig | None, args: tuple = ()) -> list:
    """Object refs of ``fn(item, 1, *args)[0]`` per item (a plain parallel map, same retries)."""
    mapper = _remote(_map_task, cfg)
    return [mapper.remote(step, fn, item, 1, *args) for item in items]


def results(step: str, refs: list) -> Iterator:
    """Each ref's value in order, one at a time (the driver never holds them all); storage and task
    failures become errors that name ``step``."""
    import ray
    from ray import exceptions as rx

    for ref in refs:
        try:
            yield ray.get(ref)
        except (rx.RayTaskError, rx.ObjectStoreFullError, rx.OutOfDiskError) as err:
            if storage_error(err):
                raise storage_full(step, storage_error(err)) from err
            cause = getattr(err, "cause", None)
            if isinstance(cause, GlobalStepError):
                raise GlobalStepError(*cause.failure.values(), cause.failures) from None
            raise GlobalStepError(step, "?", str(err).splitlines()[0]) from err


def storage_error(err: BaseException | None) -> BaseException | None:
    """The object-store or spill-disk exhaustion behind ``err`` (itself, or a task error's cause), if any."""
    from ray import exceptions as rx

    for e in (err, getattr(err, "cause", None), getattr(err, "__cause__", None)):
        if isinstance(e, (rx.ObjectStoreFullError, rx.OutOfDiskError)):
            return e
    return None


def storage_full(step: str, err: BaseException):
    """The one-line error of a step that ran out of Ray object store or spill disk, naming the limits."""
    import ray

    from wit.errors import StorageFull
    from wit.runners import settings

    disk = isinstance(err, ray.exceptions.OutOfDiskError)
    what, kind = ("spill disk", "OutOfDiskError") if disk else ("object store", "ObjectStoreFullError")
    total = ray.cluster_resources().get("object_store_memory", 0) if ray.is_initialized() else 0
    return StorageFull(f"{step}: Ray ran out of {what} ({kind}; cluster object store "
                       f"{total / 2**30:.2f} GiB; {settings.limits_text()}); raise ray.object_store_memory, "
                       "or give ray.spill_dir a bigger disk, then rerun to resume")


def ensure(address: str | None = None) -> None:
    from wit.runners.ray import ensure_ray

    ensure_ray(address, progress=False)
