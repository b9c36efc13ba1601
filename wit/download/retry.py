"""Retry only the URLs that failed for a transient reason, without touching finished work.

The first pass is ledger stage ``download``; the retry pass is its own ledger stage
(``download_retry``) writing into its own folder, so both reconcile on their own (in = kept +
dropped per stage) and nothing already downloaded is fetched again.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wit.download.fetch import RETRYABLE
from wit.io import folders, ledger

RETRY_STAGE = "download_retry"


def retry_inputs(inputs: list[str], ledger_dir: str, retry_out: str, stage: str = "download") -> list[str]:
    """Write one input part per first-pass task holding its retryable failures; return their paths."""
    paths = []
    retryable = pa.array(sorted(RETRYABLE), pa.string())
    for i, path in enumerate(inputs):
        part = ledger.ledger_part_url(ledger_dir, stage, i)
        if not folders.exists(part):
            raise FileNotFoundError(f"task {i} of {stage} has no ledger part ({part}); finish the first pass first")
        led = folders.read_parquet([part], columns=["uid", "status", "reason"])
        led = led.filter(pc.and_(pc.equal(led.column("status"), ledger.DROPPED),
                                 pc.is_in(led.column("reason"), retryable)))
        rows = folders.read_parquet([path])
        mask = pc.is_in(rows.column("uid"), led.column("uid").combine_chunks())
        url = folders.join(retry_out, "_inputs", f"_part-{i:05d}.parquet")
        if not folders.exists(url):
            folders.write_parquet(url, rows.filter(mask))
        paths.append(url)
    return paths
