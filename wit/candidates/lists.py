"""(URL, text) pairs from Parquet or CSV URL lists, with configurable column names (as img2dataset)."""

from __future__ import annotations

from typing import Iterator

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def list_batches(path: str, fmt: str, url_col: str, text_col: str, page_url_col: str | None,
                 batch_rows: int) -> Iterator[pa.Table]:
    """Batches with columns url, text, page_url (strings; nulls become "") of one list file."""
    wanted = [url_col, text_col] + ([page_url_col] if page_url_col else [])
    with fsspec.open(path, "rb") as f:
        if fmt == "parquet":
            pf = pq.ParquetFile(f)
            missing = [c for c in wanted if c not in pf.schema_arrow.names]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; have {pf.schema_arrow.names}")
            batches = (pa.Table.from_batches([rb]) for rb in pf.iter_batches(batch_size=batch_rows, columns=wanted))
            yield from (_select(t, url_col, text_col, page_url_col) for t in batches)
            return
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in wanted},
                                                 include_columns=wanted),
        )
        for rb in reader:
            t = pa.Table.from_batches([rb])
            for start in range(0, t.num_rows, batch_rows):
                yield _select(t.slice(start, batch_rows), url_col, text_col, page_url_col)


def _select(t: pa.Table, url_col: str, text_col: str, page_url_col: str | None) -> pa.Table:
    def col(name: str | None) -> pa.Array:
        if name is None:
            return pa.array([""] * t.num_rows, pa.string())
        return t.column(name).cast(pa.string()).combine_chunks().fill_null("")

    return pa.table({"url": col(url_col), "text": col(text_col), "page_url": col(page_url_col)})
