"""A part whose stage keeps no row still has its columns, so the global steps can read it."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from wit.distributed import global_ops as g
from wit.io import folders
from wit.runners import run_stage
from wit.stage import BatchResult, Stage


@dataclass
class DropAll(Stage):
    """Keeps every input column (no output_schema) and no row."""

    name: str = "dropall"

    def process_batch(self, batch: pa.Table) -> BatchResult:
        return BatchResult(kept=batch.slice(0, 0), dropped=BatchResult.drops(batch.column("uid").to_pylist(),
                                                                              ["no_match"] * batch.num_rows))


def test_parts_that_keep_nothing_keep_their_columns(tmp_path):
    rows = pa.table({"uid": ["a", "b"], "query_ids": pa.array([[1], [1, 2]], pa.list_(pa.int32())),
                     "source": ["x", "y"]})
    inputs = [str(tmp_path / "in" / "part-00000.parquet"), str(tmp_path / "in" / "part-00001.parquet")]
    folders.write_parquet(inputs[0], rows)
    folders.write_parquet(inputs[1], rows.slice(0, 0))  # an input with no rows at all
    run_stage(DropAll(), inputs, str(tmp_path / "out"), progress=False)
    parts = [str(tmp_path / "out" / folders.part_name(i)) for i in range(2)]
    for p in parts:
        t = folders.read_parquet([p])
        assert t.num_rows == 0 and t.schema.equals(rows.schema)
    # the global steps read them (DuckDB refuses a Parquet file without columns)
    assert g.entry_counts(parts).num_rows == 0
    assert g.write_later_duplicates(parts, str(tmp_path / "dups.parquet")) == 0
    assert g.count_by(parts, "source") == {}
