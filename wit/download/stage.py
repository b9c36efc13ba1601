"""The download stage: one balanced part in, its images out (or a reason code per URL)."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import pyarrow as pa

from wit import schemas
from wit.config import DownloadConfig
from wit.download.fetch import Fetcher, FetchResult
from wit.download.image import PixelBudget, Prepared, prepare, prepare_img2dataset
from wit.records import sample_key
from wit.stage import WORKER_CPUS_ENV, BatchResult, Stage

log = logging.getLogger(__name__)


def usable_cores(cgroup: str = "/sys/fs/cgroup") -> int:
    """The CPU cores this process may use: its affinity mask (a container's cpuset), and no more than
    its CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``: ``docker --cpus``, Kubernetes
    limits) or what the runner reserved for this worker (``WIT_WORKER_CPUS``: a Ray actor's
    ``num_cpus``), rounded up."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    for limit in (_cgroup_quota(cgroup), _reserved_cpus()):
        if limit:
            cores = min(cores, max(1, math.ceil(limit)))
    return cores


def _reserved_cpus() -> float | None:
    try:
        value = float(os.environ.get(WORKER_CPUS_ENV, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _cgroup_quota(root: str) -> float | None:
    """CPUs' worth of time per period the cgroup allows, or None (no limit, or no cgroup files)."""
    try:
        with open(f"{root}/cpu.max") as f:  # v2: "QUOTA PERIOD" or "max PERIOD"
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(f"{root}/cpu/cpu.cfs_quota_us") as q, open(f"{root}/cpu/cpu.cfs_period_us") as per:
            quota_us, period_us = int(q.read()), int(per.read())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


@dataclass
class DownloadStage(Stage):
    """Fetches each row's URL with per-host politeness, then resizes and re-encodes the image."""

    threaded: ClassVar[bool] = True  # a pool of ``cfg.threads`` fetch/decode threads per worker
    cfg: DownloadConfig = field(default_factory=DownloadConfig)
    name: str = "download"
    output_schema = schemas.DOWNLOADED
    batch_rows: int = 512
    #: builds the per-host limiter shared across workers (set by a runner hook); None: one per worker
    limiter_factory: Callable[[], object] | None = None
    runner_hooks: ClassVar[dict[str, str]] = {"ray": "wit.download.hosts_ray:ray_hook"}

    def setup(self) -> None:
        c = self.cfg
        limiter = self.limiter_factory() if self.limiter_factory is not None else None
        self.fetcher = Fetcher(timeout=c.timeout, retries=c.retries, backoff=c.backoff, max_bytes=c.max_bytes,
                               max_redirects=c.max_redirects, honor_robots=c.honor_robots,
                               user_agent_token=c.user_agent_token, per_host_concurrency=c.per_host_concurrency,
                               per_host_qps=c.per_host_qps, allow_private_networks=c.allow_private_networks,
                               allowed_networks=tuple(c.allowed_networks),
                               limiter=limiter)
        self.budget = PixelBudget(c.decode_pixel_budget)
        self.decode_turns = threading.BoundedSemaphore(c.decode_threads or usable_cores())
        self.pool = ThreadPoolExecutor(max_workers=c.threads, thread_name_prefix="wit-download")
        self.resizer = None
        if c.decoder == "img2dataset":
            from img2dataset.resizer import Resizer

            self.resizer = Resizer(image_size=c.image_size, resize_mode=c.resize_mode, resize_only_if_bigger=False,
                                   encode_quality=c.encode_quality)

    def teardown(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=True)

    def _one(self, url: str | None) -> tuple[Prepared, str]:
        """One row's outcome and the sha256 of the downloaded bytes (img2dataset's ``sha256``);
        whatever goes wrong is this row's reason, never the part's failure."""
        try:
            return self._fetch_and_prepare(url or "")
        except Exception as e:  # noqa: BLE001 - one URL must not fail the part
            log.warning("download %r: unexpected %s: %s", url, type(e).__name__, e)
            return Prepared(None, reason="internal_error"), ""

    def _fetch_and_prepare(self, url: str) -> tuple[Prepared, str]:
        res = self.fetcher.fetch(url)
        if res.reason:
            return Prepared(None, reason=res.reason), ""
        with self.decode_turns:  # the other fetch threads wait here, blocked, not contending for the GIL
            return self._prepare(res), hashlib.sha256(res.body).hexdigest()

    def _prepare(self, res: FetchResult) -> Prepared:
        c = self.cfg
        if self.resizer is not None:
            return prepare_img2dataset(res.body, self.resizer, max_pixels=c.max_pixels, content_type=res.content_type,
                                       budget=self.budget)
        return prepare(res.body, image_size=c.image_size, resize_mode=c.resize_mode, max_pixels=c.max_pixels,
                       quality=c.encode_quality, content_type=res.content_type, budget=self.budget)

    def process_batch(self, batch: pa.Table) -> BatchResult:
        pairs = list(self.pool.map(self._one, batch.column("url").to_pylist()))
        results, body_sha256 = [p for p, _ in pairs], [h for _, h in pairs]
        self.fetcher.limiter.flush()  # this batch's slots are free before the task can end
        ok = [i for i, r in enumerate(results) if r.jpg is not None]
        bad = [i for i, r in enumerate(results) if r.jpg is None]
        uids = batch.column("uid").to_pylist()
        kept = batch.take(pa.array(ok, pa.int64()))
        good = [results[i] for i in ok]
        kept = kept.append_column("key", pa.array([sample_key(uids[i]) for i in ok], pa.string()))
        kept = kept.append_column("jpg", pa.array([r.jpg for r in good], pa.binary()))
        for name in ("width", "height", "orig_width", "orig_height"):
            kept = kept.append_column(name, pa.array([getattr(r, name) for r in good], pa.int32()))
        kept = kept.append_column("sha256", pa.array([body_sha256[i] for i in ok], pa.string()))
        kept = kept.append_column("phash", pa.array([r.phash for r in good], pa.uint64()))
        kept = kept.append_column("phash_flip", pa.array([r.phash_flip for r in good], pa.uint64()))
        kept = kept.append_column("pixel_xxh3", pa.array([r.pixel_xxh3 for r in good], pa.string()))
        kept = kept.append_column("phash_centre", pa.array([r.phash_centre for r in good], pa.uint64()))
        kept = kept.append_column("phash_centre_flip", pa.array([r.phash_centre_flip for r in good], pa.uint64()))
        kept = kept.append_column("phash_trimmed", pa.array([r.phash_trimmed for r in good], pa.uint64()))
        return BatchResult(kept=kept, dropped=BatchResult.drops([uids[i] for i in bad],
                                                                [results[i].reason for i in bad]))
