"""Sharded Parquet folders on fsspec paths: listing, atomic writes and completion markers.

A stage's output folder holds ``part-NNNNN.parquet`` (one per task) and ``_markers/part-NNNNN.json``
(written last, holding the task's stats). A task whose marker exists is finished; a rerun skips it.
Every file is written under a temporary name and renamed into place, so a killed run leaves
either the old state or the new one, never half a file under the final name.
"""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

MARKERS = "_markers"
#: a global step's shuffle files while it runs (``wit.distributed.shuffle.through_files``)
SHUFFLE = "_shuffle"
_MARKER_NAME = re.compile(r"part-[0-9]+\.json")


def fs_and_path(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = url_to_fs(str(url))
    return fs, path


def join(base: str, *parts: str) -> str:
    base = str(base)
    return "/".join([base.rstrip("/"), *parts])


def makedirs(url: str) -> None:
    fs, path = fs_and_path(url)
    fs.makedirs(path, exist_ok=True)


def exists(url: str) -> bool:
    fs, path = fs_and_path(url)
    return fs.exists(path)


def remove_tree(url: str) -> None:
    """Remove the folder ``url`` and everything in it, if it exists."""
    fs, path = fs_and_path(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def expand(inputs: list[str] | str, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """Expand paths, folders and globs into a sorted list of file URLs (markers/temps excluded)."""
    if isinstance(inputs, str):
        inputs = [inputs]
    out: list[str] = []
    for item in inputs:
        fs, path = fs_and_path(item)
        protocol = item.split("://", 1)[0] + "://" if "://" in str(item) else ""
        if any(ch in path for ch in "*?["):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = [p for p in fs.find(path)]
        elif fs.exists(path):
            found = [path]
        else:
            raise FileNotFoundError(f"input not found: {item}")
        for p in sorted(found):
            name = p.rsplit("/", 1)[-1]
            if f"/{MARKERS}/" in p or f"/{SHUFFLE}/" in p or name.startswith((".", "_")):
                continue
            if suffixes and not name.endswith(suffixes):
                continue
            out.append(protocol + p if protocol and not p.startswith(protocol) else p)
    return sorted(dict.fromkeys(out))


def list_named(folder: str, name: re.Pattern) -> list[str]:
    """The files directly in ``folder`` whose name matches ``name``, sorted (URLs for a remote folder).

    A listing, not a glob: the folder's own name may hold ``[``, ``*``, quotes or spaces.
    """
    fs, path = fs_and_path(folder)
    if not fs.isdir(path):
        return []
    found = sorted(p for p in fs.ls(path, detail=False) if name.fullmatch(p.rstrip("/").rsplit("/", 1)[-1]))
    return [fs.unstrip_protocol(p) for p in found] if "://" in str(folder) else found


def duckdb_view(con, name: str, files: list[str]) -> None:
    """Register ``files`` (Parquet) as view ``name`` of DuckDB connection ``con``.

    Read through pyarrow, so no path is ever written into SQL text or expanded as a DuckDB glob.
    """
    import pyarrow.dataset as ds

    fs = fs_and_path(files[0])[0] if files else None
    con.register(name, ds.dataset([fs_and_path(f)[1] for f in files], format="parquet", filesystem=fs))


def part_name(index: int, suffix: str = ".parquet") -> str:
    return f"part-{index:05d}{suffix}"


def _tmp_name(final: str) -> str:
    head, _, tail = final.rpartition("/")
    return f"{head}/.tmp-{uuid.uuid4().hex[:12]}-{tail}" if head else f".tmp-{uuid.uuid4().hex[:12]}-{tail}"


def atomic_write_bytes(url: str, data: bytes | memoryview | pa.Buffer) -> None:
    fs, path = fs_and_path(url)
    parent = path.rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = _tmp_name(path)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    if getattr(fs, "protocol", None) in ("file", ("file", "local")) or "file" in fs.protocol:
        os.replace(tmp, path)
    else:
        fs.mv(tmp, path)


#: columns holding encoded images: already compressed, and every value is distinct
IMAGE_COLUMNS = frozenset({"jpg"})


@functools.lru_cache(maxsize=64)
def _leaf_paths(schema: pa.Schema) -> tuple[str, ...]:
    """The Parquet column paths of ``schema``'s leaves (``query_ids.list.element``), which per-column
    writer options name, as Arrow's writer spells them."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    pschema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    return tuple(pschema.column(i).path for i in range(len(pschema)))


def parquet_options(schema: pa.Schema, compression: str = "zstd") -> dict[str, Any]:
    """Parquet writer options for ``schema``: ``compression``, but the image columns stored as they
    are, without dictionary encoding (zstd saves 0.2 % on JPEG bytes, and the dictionary Arrow tries
    first hashes every value before it gives up; together two thirds of the write time of a part of
    1,000 images)."""
    if not IMAGE_COLUMNS.intersection(schema.names):
        return {"compression": compression}
    leaves = _leaf_paths(schema)
    return {"compression": {c: "none" if c in IMAGE_COLUMNS else compression for c in leaves},
            "use_dictionary": [c for c in leaves if c not in IMAGE_COLUMNS]}


def write_parquet(url: str, table: pa.Table, **options: Any) -> None:
    """Write ``table`` to ``url`` atomically (temporary name, then rename).

    ``options`` go to ``pyarrow.parquet.write_table`` (default: ``parquet_options``).
    """
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **{**parquet_options(table.schema), **options})
    atomic_write_bytes(url, sink.getvalue())  # the Arrow buffer itself: no copy into bytes


#: ``pre_buffer=False`` on every read of a Python file object: Arrow's pre-buffering reads it from IO
#: threads that can still be alive when the interpreter exits, and the process then aborts ("terminate
#: called without an active exception", exit 134) after its work is done; measured on about half of
#: the runs of a script that reads a multi-row-group file three times, none with it off.


def read_parquet(url: str | list[str], columns: list[str] | None = None) -> pa.Table:
    paths = expand(url, (".parquet",)) if isinstance(url, str) else url
    tables = []
    for p in paths:
        fs, path = fs_and_path(p)
        with fs.open(path, "rb") as f:
            tables.append(pq.read_table(f, columns=columns, pre_buffer=False))
    if not tables:
        raise FileNotFoundError(f"no parquet files in {url}")
    return pa.concat_tables(tables, promote_options="default")


#: rows per row group of files read one part at a time (``read_part``): a reader's memory is one group
PART_ROW_GROUP = 65_536


def parquet_rows(files: list[str]) -> int:
    """Rows of Parquet ``files`` from their footers (no data read)."""
    n = 0
    for url in files:
        fs, path = fs_and_path(url)
        with fs.open(path, "rb") as f:
            n += pq.ParquetFile(f).metadata.num_rows
    return n


def parquet_schema(url: str) -> pa.Schema:
    """The Arrow schema in a Parquet file's footer (no rows read)."""
    fs, path = fs_and_path(url)
    with fs.open(path, "rb") as f:
        return pq.ParquetFile(f).schema_arrow


def read_part(url: str, part: int, columns: list[str] | None = None) -> pa.Table:
    """The rows of ``url`` whose ``part`` column is ``part``. Files sorted by part with bounded row
    groups (``PART_ROW_GROUP``) are read a row group or two at a time: row groups whose statistics
    exclude ``part`` are skipped, so the reader's memory does not grow with the file."""
    fs, path = fs_and_path(url)
    with fs.open(path, "rb") as f:
        return pq.read_table(f, columns=columns, filters=[("part", "=", int(part))], pre_buffer=False)


def write_json(url: str, obj: Any) -> None:
    atomic_write_bytes(url, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(url: str) -> Any:
    fs, path = fs_and_path(url)
    with fs.open(path, "rb") as f:
        return json.loads(f.read())


def marker_url(out: str, index: int) -> str:
    return join(out, MARKERS, part_name(index, ".json"))


def is_done(out: str, index: int) -> bool:
    return exists(marker_url(out, index))


def read_markers(out: str) -> list[dict]:
    fs, path = fs_and_path(join(out, MARKERS))
    if not fs.exists(path):
        return []
    return [read_json(p) for p in list_named(join(out, MARKERS), _MARKER_NAME)]
