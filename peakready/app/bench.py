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
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from peakready.errors import PeakreadyError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise PeakreadyError(f"--url: expected a loopback address (127.0.0.1), got {host!r}")


async def _client(
    host: str,
    port: int,
    result: BenchResult,
    products: int,
    deadline: float,
    budget: list[int],
    prefix: str,
    worker: int,
) -> None:
    """One keep-alive HTTP/1.1 connection, requests one after another.

    Plain asyncio streams, not an HTTP client library: at a few hundred orders/s on the
    same two cores, httpx's ~3 ms of CPU per request would measure the client instead.
    """
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    n = 0
    try:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            n += 1
            body = json.dumps(
                {"product_id": 1 + (worker * 7919 + n) % products, "quantity": 1}
            ).encode()
            request = (
                f"POST /orders HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Idempotency-Key: {prefix}-{uuid.uuid4()}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                conn[1].write(request)
                status = await asyncio.wait_for(_read_response(conn[0]), 10)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                if conn is not None:
                    conn[1].close()
                conn = None
                await asyncio.sleep(0.05)  # a refused port must not become a busy loop
                continue
            result.latencies.append(time.perf_counter() - start)
            result.statuses[status] += 1
    finally:
        if conn is not None:
            conn[1].close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Status code of one response; its body is read and dropped (Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def run_async(
    url: str, clients: int, seconds: float, products: int, max_requests: int, prefix: str
) -> BenchResult:
    check_loopback(url)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = BenchResult(seconds=0.0)
    budget = [max_requests]
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(
        *(
            _client(host, port, result, products, deadline, budget, prefix, worker)
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
