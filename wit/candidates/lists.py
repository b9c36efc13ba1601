"""(URL, text) pairs from Parquet or CSV URL lists, with configurable column names (as img2dataset)."""

from __future__ import annotations

from typing import Iterator

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def list_batches(path: str, fmt: str, url_col: str, text_col: str, page_url_col: str | None,
                 batch_rows: int, errors: dict[str, int] | None = None) -> Iterator[pa.Table]:
    """Batches with columns url, text, page_url (strings; nulls become "") of one list file.

    CSV values are read as bytes and decoded here: a row holding bytes that are not UTF-8 is
    skipped and counted (``invalid_utf8_row``), as is a row with the wrong number of fields
    (``bad_csv_row``), instead of the reader rejecting the whole file.
    """
    errors = {} if errors is None else errors
    wanted = [url_col, text_col] + ([page_url_col] if page_url_col else [])
    with fsspec.open(path, "rb") as f:
        if fmt == "parquet":
            pf = pq.ParquetFile(f)
            _check_columns(path, wanted, pf.schema_arrow.names)
            batches = (pa.Table.from_batches([rb]) for rb in pf.iter_batches(batch_size=batch_rows, columns=wanted))
            yield from (_select(t, url_col, text_col, page_url_col) for t in batches)
            return

        def bad_row(row) -> str:
            errors["bad_csv_row"] = errors.get("bad_csv_row", 0) + 1
            return "skip"

        try:
            reader = pacsv.open_csv(
                f,
                read_options=pacsv.ReadOptions(block_size=1 << 22),
                parse_options=pacsv.ParseOptions(invalid_row_handler=bad_row),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.binary() for c in wanted}),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a readable CSV file ({e})") from None
        _check_columns(path, wanted, reader.schema.names)
        for rb in reader:
            t = _decoded(pa.Table.from_batches([rb]).select(wanted), errors)
            for start in range(0, t.num_rows, batch_rows):
                yield _select(t.slice(start, batch_rows), url_col, text_col, page_url_col)


def _check_columns(path: str, wanted: list[str], have: list[str]) -> None:
    missing = [c for c in wanted if c not in have]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(map(repr, missing))} (columns: {', '.join(have)})")


def _decoded(t: pa.Table, errors: dict[str, int]) -> pa.Table:
    """``t``'s binary columns as strings, without the rows whose bytes are not UTF-8."""
    try:
        return pa.table({n: t.column(n).cast(pa.string()) for n in t.column_names})
    except pa.ArrowInvalid:
        pass
    ok = [all(_utf8(v) for v in row) for row in zip(*(t.column(n).to_pylist() for n in t.column_names))]
    n_bad = ok.count(False)
    errors["invalid_utf8_row"] = errors.get("invalid_utf8_row", 0) + n_bad
    t = t.filter(pa.array(ok, pa.bool_()))
    return pa.table({n: t.column(n).cast(pa.string()) for n in t.column_names})


def _utf8(value: bytes | None) -> bool:
    try:
        value is None or value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _select(t: pa.Table, url_col: str, text_col: str, page_url_col: str | None) -> pa.Table:
    def col(name: str | None) -> pa.Array:
        if name is None:
            return pa.array([""] * t.num_rows, pa.string())
        return t.column(name).cast(pa.string()).combine_chunks().fill_null("")

    return pa.table({"url": col(url_col), "text": col(text_col), "page_url": col(page_url_col)})
