"""The per-host limit held across every Ray worker: ``HostBroker`` served by named async actors.

The driver (``global_host_limit``, entered by the ray runner through ``ray_hook``) starts K broker
actors named for this run, hosts sharded over them by a stable hash; each download worker's
``DownloadStage.setup()`` builds its ``RayHostLimiter`` from the factory the hook gives it, which batches a worker's asks and
releases into one actor call per round trip; waiting for a busy host happens in the broker's
event loop, not in a Ray task slot. Only this module and wit/runners/ray.py import ray for the download.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
import uuid
import zlib
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import ray

from wit.config import DownloadConfig
from wit.download.hosts import HostBroker, Lease

#: concurrent calls one broker actor accepts; waiting acquires count, so keep it above workers x threads
BROKER_MAX_CONCURRENCY = 10_000


def shard_of(host: str, shards: int) -> int:
    """The broker that owns ``host`` (stable across processes, unlike ``hash``)."""
    return zlib.crc32(host.encode()) % shards


class RayHostLimiter:
    """A worker's handle on the run's brokers; thread-safe (the stage's fetch threads share it).

    Requests are batched: one dispatcher thread sends every pending ask and release of a broker in
    a single ``exchange`` call (group commit: what piles up during one round trip rides the next),
    so a worker makes one actor call per batch, not two per URL. An ask for a busy host comes back
    empty and its thread then waits in the broker's FIFO queue with its own ``acquire`` call.
    """

    def __init__(self, names: tuple[str, ...]):
        self.names = tuple(names)
        self._brokers = [ray.get_actor(n) for n in self.names]
        self._cond = threading.Condition()
        self._asks: list[list[tuple[str, Future]]] = [[] for _ in self._brokers]
        self._releases: list[list[int]] = [[] for _ in self._brokers]
        self._busy = False
        self.calls = {"exchange": 0, "acquire": 0}
        threading.Thread(target=self._dispatch, name="wit-host-leases", daemon=True).start()

    def acquire(self, host: str) -> Lease:
        k = shard_of(host, len(self._brokers))
        fut: Future = Future()
        with self._cond:
            self._asks[k].append((host, fut))
            self._cond.notify_all()
        grant = fut.result()
        if grant is None:
            with self._cond:
                self.calls["acquire"] += 1
            grant = ray.get(self._brokers[k].acquire.remote(host))
        lease_id, delay = grant
        if delay > 0:
            time.sleep(delay)
        return Lease(host, lease_id)

    def release(self, lease: Lease) -> None:
        with self._cond:
            self._releases[shard_of(lease.host, len(self._brokers))].append(lease.id)
            self._cond.notify_all()

    def flush(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._busy and not any(self._releases))

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: any(self._asks) or any(self._releases))
                asks, self._asks = self._asks, [[] for _ in self._brokers]
                releases, self._releases = self._releases, [[] for _ in self._brokers]
                self._busy = True
            try:
                refs = {k: self._brokers[k].exchange.remote(releases[k], [h for h, _ in asks[k]])
                        for k in range(len(self._brokers)) if asks[k] or releases[k]}
                self.calls["exchange"] += len(refs)
                for k, ref in refs.items():
                    for (_, fut), grant in zip(asks[k], ray.get(ref)):
                        fut.set_result(grant)
            except Exception as exc:  # noqa: BLE001 - a lost broker fails the waiting fetches, loudly
                for fut in (f for shard in asks for _, f in shard if not f.done()):
                    fut.set_exception(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


@dataclass
class GlobalHostLimit:
    """The brokers of one download run: their names go to the stage, their counts to the report."""

    names: tuple[str, ...]
    actors: list

    def stats(self) -> dict:
        per = ray.get([a.stats.remote() for a in self.actors])
        counts = {k: sum(p["counts"][k] for p in per) for k in per[0]["counts"]}
        return {"brokers": len(per), **counts, "max_in_flight": max(p["max_in_flight"] for p in per)}


@contextmanager
def global_host_limit(cfg: DownloadConfig, address: str | None = None,
                      progress: bool = True) -> Iterator[GlobalHostLimit]:
    """Start this run's broker actors (job-scoped, 0 CPUs), yield them, and stop them afterwards."""
    from wit.runners.ray import ensure_ray

    ensure_ray(address, progress=progress)
    run = uuid.uuid4().hex[:12]
    names = tuple(f"wit-download-hosts-{run}-{k}" for k in range(cfg.host_limit_shards))
    cls = ray.remote(HostBroker)
    actors = [cls.options(name=n, num_cpus=0, max_concurrency=BROKER_MAX_CONCURRENCY)
              .remote(cfg.per_host_concurrency, cfg.per_host_qps, cfg.host_lease_ttl) for n in names]
    ray.get([a.stats.remote() for a in actors])  # up before any worker looks them up
    try:
        yield GlobalHostLimit(names, actors)
    finally:
        for a in actors:
            ray.kill(a)


@contextmanager
def ray_hook(stage, address: str | None = None, progress: bool = True):
    """The download's ray-runner hook: with ``host_limit: global``, the stage's fetchers share this run's brokers."""
    if stage.cfg.host_limit != "global":
        yield stage, dict
        return
    with global_host_limit(stage.cfg, address, progress) as limit:
        yield dataclasses.replace(stage, limiter_factory=functools.partial(RayHostLimiter, limit.names)), \
            lambda: {"host_limit": limit.stats()}
