"""Running the match stage over a candidates folder: duplicate pre-pass, the stage, the count reduce."""

from __future__ import annotations

from wit.io import folders
from wit.distributed import global_ops
from wit.match.counts import part_files
from wit.match.stage import MatchStage, load_queries
from wit.runners import run_stage

ENTRY_COUNTS_FILE = "entry_counts.parquet"
DUPLICATES_FILE = "_duplicates.parquet"


def match_folder(queries: str, candidates: str | list[str], out: str, backend: str = "tokens",
                 **runner_kwargs) -> dict:
    """Match every candidate part into ``out``; write ``out/entry_counts.parquet``; return the report."""
    load_queries(queries)  # refuses a bad list before any work
    inputs = part_files(candidates)
    if not inputs:
        raise ValueError(f"match: no candidate parts in {candidates}")
    folders.makedirs(out)
    dups_url = folders.join(out, DUPLICATES_FILE)
    # Computed before any task so every worker drops the same later occurrences.
    global_ops.write_later_duplicates(inputs, dups_url, **runner_kwargs)
    stage = MatchStage(queries=queries, duplicates=dups_url, backend=backend)
    report = run_stage(stage, inputs, out, **runner_kwargs).as_dict()
    counts = global_ops.write_entry_counts(out, folders.join(out, ENTRY_COUNTS_FILE), **runner_kwargs)
    report["entries_matched"] = counts.num_rows
    report["matches"] = int(sum(counts.column("count").to_pylist()))
    return report
