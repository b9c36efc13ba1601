"""Retry only the URLs that failed for a transient reason, without touching finished work.

The first pass is ledger stage ``download``; the retry pass is its own ledger stage
(``download_retry``) writing into its own folder, so both reconcile on their own (in = kept +
dropped per stage) and nothing already downloaded is fetched again.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wit.download.fetch import RETRYABLE
from wit.io import folders, ledger, storage

RETRY_STAGE = "download_retry"


def retry_inputs(inputs: list[str], ledger_dir: str, retry_out: str, stage: str = "download") -> list[str]:
    """Write one input part per first-pass task holding its retryable failures; return their paths."""
    fs, lpath = folders.fs_and_path(ledger_dir)
    paths = []
    con = storage.duckdb_connect(ledger_dir)
    reasons = ", ".join(f"'{r}'" for r in sorted(RETRYABLE))
    for i, path in enumerate(inputs):
        part = ledger.ledger_part_url(ledger_dir, stage, i)
        if not folders.exists(part):
            raise FileNotFoundError(f"task {i} of {stage} has no ledger part ({part}); finish the first pass first")
        ppath = storage.duckdb_path(part)
        failed = {u for (u,) in con.execute(
            f"SELECT uid FROM read_parquet('{ppath}') WHERE status = 'dropped' AND reason IN ({reasons})").fetchall()}
        rows = folders.read_parquet([path])
        mask = pc.is_in(rows.column("uid"), pa.array(sorted(failed), pa.string()))
        url = folders.join(retry_out, "_inputs", f"_part-{i:05d}.parquet")
        if not folders.exists(url):
            folders.write_parquet(url, rows.filter(mask))
        paths.append(url)
    return paths
