"""Per-host politeness policy: the in-process limiter's rate and the shared broker's slots, FIFO and reclaim."""

from __future__ import annotations

import asyncio
import threading
import time

from wit.download.hosts import HostBroker, LocalHostLimiter


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_local_limiter_spaces_starts_per_host_at_the_rate():
    clock = FakeClock()
    lim = LocalHostLimiter(concurrency=4, qps=4.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        lease = lim.acquire("a.example")
        starts.append(clock() - 100.0)
        lim.release(lease)
    assert starts == [0.0, 0.25, 0.5, 0.75, 1.0]
    t = clock()
    lim.release(lim.acquire("b.example"))  # another host has its own budget: no wait
    assert clock() == t


def test_local_limiter_rate_in_real_time_across_threads():
    lim = LocalHostLimiter(concurrency=8, qps=50.0)
    starts: list[float] = []

    def one() -> None:
        lease = lim.acquire("h")
        starts.append(time.monotonic())
        lim.release(lease)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    starts.sort()
    assert starts[-1] - starts[0] >= 7 / 50 - 0.005  # 8 starts at 50/s span at least 7 intervals
    assert lim.max_seen["h"] <= 8


def test_broker_holds_the_limit_hands_slots_over_fifo_and_keeps_hosts_apart():
    async def scenario():
        b = HostBroker(concurrency=2, sweep_every=0)
        first = [await b.acquire("a") for _ in range(2)]
        waiting = [asyncio.create_task(b.acquire("a")) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiting)
        other, _ = await b.acquire("b")  # a busy host does not block another
        await b.release([first[0][0]])
        await asyncio.sleep(0)
        assert [w.done() for w in waiting] == [True, False, False]  # first come, first served
        await b.release([first[1][0], waiting[0].result()[0]])
        await asyncio.sleep(0)
        assert all(w.done() for w in waiting)
        await b.release([w.result()[0] for w in waiting[1:]] + [other])
        stats = await b.stats()
        assert stats["max_in_flight"] == 2 and stats["busy_hosts"] == 0 and stats["leases"] == 0
        assert stats["counts"]["granted"] == 6 and stats["counts"]["waited"] == 3

    asyncio.run(scenario())


def test_broker_exchange_frees_then_grants_only_free_hosts():
    async def scenario():
        b = HostBroker(concurrency=1, sweep_every=0)
        held, _ = await b.acquire("a")
        waiter = asyncio.create_task(b.acquire("a"))
        await asyncio.sleep(0)
        got = await b.exchange([], ["a", "b", "b"])
        assert got[0] is None and got[1] is not None and got[2] is None  # busy hosts wait via acquire
        got = await b.exchange([held, got[1][0]], ["a", "b"])
        await asyncio.sleep(0)
        assert waiter.done() and got[0] is None and got[1] is not None  # a's freed slot went to its waiter

    asyncio.run(scenario())


def test_broker_reclaims_a_lease_its_holder_never_returns():
    async def scenario():
        clock = FakeClock()
        b = HostBroker(concurrency=1, lease_ttl=30.0, clock=clock, sweep_every=0)  # reclaim driven by hand
        lost, _ = await b.acquire("a")  # its worker dies holding it
        waiter = asyncio.create_task(b.acquire("a"))
        await asyncio.sleep(0)
        clock.t += 10
        assert b.reclaim_expired() == 0 and not waiter.done()
        clock.t += 25
        assert b.reclaim_expired() == 1
        await asyncio.sleep(0)
        assert waiter.done()
        await b.release([lost])  # a late release of the reclaimed lease frees nothing twice
        assert (await b.stats())["busy_hosts"] == 1
        await b.release([waiter.result()[0]])
        assert (await b.stats())["busy_hosts"] == 0

    asyncio.run(scenario())


def test_broker_rate_tokens_are_spaced_per_host():
    async def scenario():
        clock = FakeClock()
        b = HostBroker(concurrency=8, qps=10.0, clock=clock, sweep_every=0)
        delays = [(await b.acquire("a"))[1] for _ in range(4)]
        assert [round(d, 6) for d in delays] == [0.0, 0.1, 0.2, 0.3]
        assert (await b.acquire("b"))[1] == 0.0

    asyncio.run(scenario())
