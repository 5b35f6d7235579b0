"""A bounded local order load against one storefront instance: orders/s and latency.

``python -m peakready.app.bench --url http://127.0.0.1:8080 --clients 20 --seconds 10``.
Only loopback URLs are accepted; the run is bounded in time and in request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from peakready.errors import PeakreadyError
from peakready.load.rawhttp import Connection, check_loopback, order_request


@dataclass
class BenchResult:
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "seconds": round(self.seconds, 2),
            "requests": len(self.latencies),
            "orders_created": self.statuses[201],
            "orders_per_s": round(self.statuses[201] / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(self.percentile(0.50) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
            "max_ms": round(max(self.latencies, default=0.0) * 1000, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "transport_errors": self.errors,
        }


async def _client(
    port: int,
    result: BenchResult,
    products: int,
    deadline: float,
    budget: list[int],
    prefix: str,
    worker: int,
) -> None:
    """One keep-alive connection (``peakready.load.rawhttp``), orders one after another."""
    conn = Connection(port, timeout_s=10)
    n = 0
    try:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            n += 1
            request = order_request(1 + (worker * 7919 + n) % products, prefix)
            start = time.perf_counter()
            try:
                status = await conn.request(request)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                await asyncio.sleep(0.05)  # a refused port must not become a busy loop
                continue
            result.latencies.append(time.perf_counter() - start)
            result.statuses[status] += 1
    finally:
        conn.close()


async def run_async(
    url: str, clients: int, seconds: float, products: int, max_requests: int, prefix: str
) -> BenchResult:
    _, port = check_loopback(url)
    result = BenchResult(seconds=0.0)
    budget = [max_requests]
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(
        *(
            _client(port, result, products, deadline, budget, prefix, worker)
            for worker in range(clients)
        )
    )
    result.seconds = time.monotonic() - start
    return result


def run(
    url: str,
    clients: int = 20,
    seconds: float = 10,
    products: int = 20,
    max_requests: int = 50_000,
    prefix: str = "bench",
) -> BenchResult:
    """Place orders from ``clients`` concurrent clients for at most ``seconds``.

    Idempotency keys are ``<prefix>-<uuid4>``, so the orders of a run can be counted.
    """
    return asyncio.run(run_async(url, clients, seconds, products, max_requests, prefix))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peakready.app.bench", description=__doc__)
    parser.add_argument("--url", required=True, help="storefront base URL (loopback only)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--products", type=int, default=20, help="spread orders over 1..N")
    parser.add_argument("--max-requests", type=int, default=50_000)
    args = parser.parse_args(argv)
    try:
        if not 1 <= args.clients <= 200 or not 0 < args.seconds <= 300:
            raise PeakreadyError("--clients: expected 1..200 and --seconds: expected 0..300")
        result = run(args.url, args.clients, args.seconds, args.products, args.max_requests)
    except PeakreadyError as exc:
        print(f"bench: error: {exc.lines[0]}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result.summary(), indent=2))
    if not result.latencies:
        print(f"bench: error: --url: no answer from {args.url}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
