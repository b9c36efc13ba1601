"""Per-host politeness: at most N requests in flight and at most Q request starts per second per host.

``HostLimiter`` is the interface the fetcher sees (``acquire(host) -> Lease``, ``release(lease)``).
``LocalHostLimiter`` enforces it inside one process. ``HostBroker`` is the same policy as an
asyncio object that many processes share through RPC (wit/download/hosts_ray.py serves it from a
Ray actor), so the limit holds across all download workers and not once per worker.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol


@dataclass(frozen=True)
class Lease:
    """One request slot on ``host``; ``id`` names it to the broker that granted it (0: local)."""

    host: str
    id: int = 0


class HostLimiter(Protocol):
    def acquire(self, host: str) -> Lease:
        """Block until ``host`` has a free slot and its next start time has come."""

    def release(self, lease: Lease) -> None:
        """Give the slot back (always, whatever the request's outcome)."""

    def flush(self) -> None:
        """Return once every released slot is free again (for a limiter that defers releases)."""


class StartTimes:
    """Reserves start times ``1 / qps`` apart per host: the rate half of the policy (qps 0: no limit)."""

    def __init__(self, qps: float, clock: Callable[[], float] = time.monotonic):
        self.qps, self.clock = qps, clock
        self._next: dict[str, float] = {}

    def reserve(self, host: str) -> float:
        """Seconds the caller must wait before starting its request on ``host``."""
        if self.qps <= 0:
            return 0.0
        now = self.clock()
        start = max(now, self._next.get(host, now))
        self._next[host] = start + 1.0 / self.qps
        return start - now

    def forget_idle(self) -> None:
        """Drop hosts whose next start is already past (they would start now anyway)."""
        now = self.clock()
        for host in [h for h, t in self._next.items() if t <= now]:
            del self._next[host]


class LocalHostLimiter:
    """The policy for the threads of one process (the local runner, or ``host_limit: worker``)."""

    def __init__(self, concurrency: int, qps: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.concurrency, self.qps = concurrency, qps
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._starts = StartTimes(qps, clock)
        self._active: dict[str, int] = {}
        self.max_seen: dict[str, int] = {}

    def _sem(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._sems.get(host)
            if sem is None:
                sem = self._sems[host] = threading.BoundedSemaphore(self.concurrency)
            return sem

    def acquire(self, host: str) -> Lease:
        self._sem(host).acquire()
        with self._lock:
            delay = self._starts.reserve(host)
            n = self._active[host] = self._active.get(host, 0) + 1
            self.max_seen[host] = max(self.max_seen.get(host, 0), n)
        if delay > 0:
            self._sleep(delay)
        return Lease(host)

    def release(self, lease: Lease) -> None:
        with self._lock:
            self._active[lease.host] -= 1
        self._sem(lease.host).release()

    def flush(self) -> None:
        pass


class HostBroker:
    """The policy for many processes: an asyncio object one event loop serves (see hosts_ray).

    ``acquire`` waits (FIFO per host) for a slot and returns ``(lease_id, delay_s)``: the caller
    sleeps ``delay_s`` (the rate token) and then fetches. A released slot passes straight to the
    host's next waiter. A lease not released within ``lease_ttl`` seconds (its worker died, or a
    server drips bytes forever) is reclaimed by ``reclaim_expired`` so a host never locks up; a
    background task calls it every ``sweep_every`` seconds (default ttl / 4, at most 10 s; 0: never).
    """

    def __init__(self, concurrency: int, qps: float = 0.0, lease_ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, sweep_every: float | None = None):
        self.concurrency, self.lease_ttl, self.clock = concurrency, lease_ttl, clock
        self.sweep_every = min(10.0, lease_ttl / 4) if sweep_every is None else sweep_every
        self._starts = StartTimes(qps, clock)
        self._active: dict[str, int] = {}
        self._waiters: dict[str, deque[asyncio.Future]] = {}
        self._leases: dict[int, tuple[str, float]] = {}  # id -> (host, expiry)
        self._ids = itertools.count(1)
        self._sweeper: asyncio.Task | None = None
        self.max_in_flight = 0  # over all hosts (a per-host dict would grow with every host ever seen)
        self.counts = {"granted": 0, "released": 0, "reclaimed": 0, "waited": 0}

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None and self.sweep_every > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    def _full(self, host: str) -> bool:
        """No slot for a newcomer: all taken, or others queue first (FIFO)."""
        return self._active.get(host, 0) >= self.concurrency or bool(self._waiters.get(host))

    async def acquire(self, host: str) -> tuple[int, float]:
        self._ensure_sweeper()
        if self._full(host):
            fut = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(host, deque()).append(fut)
            self.counts["waited"] += 1
            await fut  # resolved by _free, which hands this waiter the slot it frees
        else:
            self._active[host] = self._active.get(host, 0) + 1
        return self._lease(host)

    async def exchange(self, release_ids: list[int], hosts: list[str]) -> list[tuple[int, float] | None]:
        """One round trip for a batch: free ``release_ids``, then grant each of ``hosts`` a slot if
        one is free right now (None where the host is busy: ask again with ``acquire``, which waits)."""
        self._ensure_sweeper()
        await self.release(release_ids)
        out: list[tuple[int, float] | None] = []
        for host in hosts:
            if self._full(host):
                out.append(None)
            else:
                self._active[host] = self._active.get(host, 0) + 1
                out.append(self._lease(host))
        return out

    def _lease(self, host: str) -> tuple[int, float]:
        self.max_in_flight = max(self.max_in_flight, self._active[host])
        delay = self._starts.reserve(host)
        lease_id = next(self._ids)
        self._leases[lease_id] = (host, self.clock() + delay + self.lease_ttl)
        self.counts["granted"] += 1
        return lease_id, delay

    async def release(self, lease_ids: list[int]) -> None:
        """Free the slots of ``lease_ids``; unknown ids (already reclaimed) are ignored."""
        for lease_id in lease_ids:
            entry = self._leases.pop(lease_id, None)
            if entry is not None:
                self.counts["released"] += 1
                self._free(entry[0])

    def _free(self, host: str) -> None:
        waiters = self._waiters.get(host)
        while waiters:
            fut = waiters.popleft()
            if not fut.done():  # a cancelled caller's future is skipped
                fut.set_result(None)
                return
        self._waiters.pop(host, None)
        n = self._active[host] - 1
        if n:
            self._active[host] = n
        else:
            del self._active[host]  # hosts come and go by the million: keep only busy ones

    def reclaim_expired(self) -> int:
        now = self.clock()
        expired = [i for i, (_, expiry) in self._leases.items() if expiry <= now]
        for lease_id in expired:
            self._free(self._leases.pop(lease_id)[0])
        self.counts["reclaimed"] += len(expired)
        self._starts.forget_idle()
        return len(expired)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            self.reclaim_expired()

    async def stats(self) -> dict:
        return {"counts": dict(self.counts), "max_in_flight": self.max_in_flight, "busy_hosts": len(self._active),
                "leases": len(self._leases)}
