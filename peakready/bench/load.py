"""Bounded closed-loop load steps: HTTP over keep-alive connections, or straight psycopg.

The HTTP client is a minimal HTTP/1.1 client on asyncio streams over uvloop (a few µs of
Python per request, where a full client costs a millisecond; uvloop takes it from 0.125 to
0.106 ms of CPU per order): on a 2-core machine the load generator shares the CPUs with
what it measures, so the cheaper it is, the truer the figure. The direct-database path
keeps one thread per connection: psycopg's async client on uvloop reached no higher
ceiling (2,771-2,922 against 2,962-2,985 orders/s in one run).
Only 127.0.0.1 is ever addressed; every step is bounded in time and request count.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import uvloop

from peakready.bench.capacity import Step
from peakready.bench.stats import percentile
from peakready.errors import PeakreadyError
from peakready.load.rawhttp import Connection, Request

#: Hard bound on requests in one step, whatever the rate.
MAX_REQUESTS_PER_STEP = 200_000


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0

    def step(self, concurrency: int, seconds: float) -> Step:
        ok = len(self.latencies)
        lat = self.latencies or [0.0]
        return Step(
            concurrency=concurrency,
            rate=ok / seconds if seconds > 0 else 0.0,
            p50_ms=percentile(lat, 50) * 1000,
            p99_ms=percentile(lat, 99) * 1000 if self.latencies else float("inf"),
            ok=ok,
            errors=self.errors,
            seconds=seconds,
        )


def http_step(
    port: int,
    concurrency: int,
    make: Callable[[int], Request],
    seconds: float = 4.0,
    warmup_s: float = 1.0,
    timeout_s: float = 5.0,
) -> Step:
    """``concurrency`` clients send ``make(i)`` back to back for ``warmup_s + seconds``;
    only the last ``seconds`` count. A request answered outside ``Request.ok`` is an error."""
    if not 1 <= concurrency <= 256:
        raise PeakreadyError(f"concurrency {concurrency}: expected 1..256")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_http_step(port, concurrency, make, seconds, warmup_s, timeout_s))


async def _http_step(
    port: int,
    concurrency: int,
    make: Callable[[int], Request],
    seconds: float,
    warmup_s: float,
    timeout_s: float,
) -> Step:
    tally = _Tally()
    start = time.monotonic()
    counting_from = start + warmup_s
    deadline = counting_from + seconds
    budget = [MAX_REQUESTS_PER_STEP]

    async def client(n: int) -> None:
        conn = Connection(port, timeout_s)
        i = n
        try:
            while budget[0] > 0:
                began = time.monotonic()
                if began >= deadline:
                    break
                budget[0] -= 1
                req = make(i)
                i += concurrency
                try:
                    status = await conn.request(req)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    status = 0
                    await asyncio.sleep(0.05)  # refused: do not spin
                if began < counting_from:
                    continue
                if status in req.ok:
                    tally.latencies.append(time.monotonic() - began)
                else:
                    tally.errors += 1
        finally:
            conn.close()

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return tally.step(concurrency, min(seconds, max(time.monotonic() - counting_from, 1e-9)))


def db_step(
    connect: Callable[[], psycopg.Connection[Any]],
    transaction: Callable[[psycopg.Connection[Any], int], bool],
    concurrency: int,
    seconds: float = 4.0,
    warmup_s: float = 1.0,
) -> Step:
    """``concurrency`` threads, one connection each, run ``transaction(conn, i)`` back to
    back for ``warmup_s + seconds``; it returns True when the transaction did its work."""
    if not 1 <= concurrency <= 256:
        raise PeakreadyError(f"concurrency {concurrency}: expected 1..256")
    tally = _Tally()
    lock = threading.Lock()
    start = time.monotonic()
    counting_from = start + warmup_s
    deadline = counting_from + seconds
    budget = [MAX_REQUESTS_PER_STEP]

    def worker(n: int) -> None:
        with connect() as conn:
            i = n
            while True:
                began = time.monotonic()
                with lock:
                    if began >= deadline or budget[0] <= 0:
                        return
                    budget[0] -= 1
                try:
                    done = transaction(conn, i)
                except psycopg.Error:
                    done = False
                    conn.rollback()
                i += concurrency
                if began < counting_from:
                    continue
                with lock:
                    if done:
                        tally.latencies.append(time.monotonic() - began)
                    else:
                        tally.errors += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=warmup_s + seconds + 30)
    return tally.step(concurrency, min(seconds, max(time.monotonic() - counting_from, 1e-9)))
