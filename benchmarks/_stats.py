"""Shared by the benchmarks: interleaved timing rounds, medians with their spread, the load average.

On a shared machine one run means little; each benchmark times its path, its baseline and its
floor in alternation, several rounds, and quotes the median of each with the min-max range.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable


def load_average() -> str:
    """The 1/5/15-minute load averages, for the record printed with every figure."""
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())


def rounds(fns: dict[str, Callable[[], object]], n: int, clock: Callable[[], float] = time.perf_counter
           ) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Run every function once per round, in turn, ``n`` rounds; their times and last results."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    results: dict[str, object] = {}
    for _ in range(n):
        for k, fn in fns.items():
            t0 = clock()
            results[k] = fn()
            times[k].append(clock() - t0)
    return times, results


def rate(count: float, times: list[float], unit: str = "/s", fmt: str = ",.0f") -> str:
    """``count / time`` as a median with its min-max range."""
    rates = sorted(count / t for t in times)
    return f"{statistics.median(rates):{fmt}}{unit} ({rates[0]:{fmt}}-{rates[-1]:{fmt}})"


def ratio(slow: list[float], fast: list[float]) -> str:
    """Median of per-round ratios ``slow / fast`` with their min-max range."""
    r = sorted(s / f for s, f in zip(slow, fast))
    return f"{statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})"
