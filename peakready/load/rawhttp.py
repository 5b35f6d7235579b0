"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for 127.0.0.1 only.

The bench's closed-loop steps and the storefront's own order benchmark use it instead of
an HTTP client library: on 2 cores the load generator shares the CPUs with what it
measures, and this client costs ≈ 0.1 ms of CPU per order where httpx costs ≈ 3 ms
(bench/README). The drills' load is Locust (``peakready.load.generator``); this client
is only for figures that a heavier client would distort.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from peakready.errors import PeakreadyError

LOOPBACK = "127.0.0.1"
#: Names of this machine's loopback that a URL may use.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    ok: frozenset[int] = frozenset({200})


def order_request(product_id: int, prefix: str = "bench") -> Request:
    """``POST /orders`` for one unit, with a fresh idempotency key; 201 counts."""
    body = json.dumps({"product_id": product_id, "quantity": 1}).encode()
    key = f"{prefix}-{uuid.uuid4()}"
    headers = (("Content-Type", "application/json"), ("Idempotency-Key", key))
    return Request("POST", "/orders", body, headers, frozenset({201}))


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout_s: float) -> None:
        self.port = port  # on LOOPBACK: this client addresses nothing else
        self.timeout_s = timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        #: Header fields (lower-cased) of the last response.
        self.headers: dict[str, str] = {}

    async def request(self, req: Request) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
        head = [f"{req.method} {req.path} HTTP/1.1", f"Host: {LOOPBACK}:{self.port}"]
        head += [f"{k}: {v}" for k, v in req.headers]
        head.append(f"Content-Length: {len(req.body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + req.body)
        try:
            return await asyncio.wait_for(self._response(), self.timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise

    async def _response(self) -> int:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if fields.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readline()).strip() or b"0", 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection") == "close":
            self.close()
        self.headers = fields
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def check_loopback(url: str, what: str = "--url") -> tuple[str, int]:
    """``(host, port)`` of ``url``, which must name this machine's loopback."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK_HOSTS:
        raise PeakreadyError(
            f"{what}: expected a loopback address (127.0.0.1), got {parts.hostname!r}"
        )
    return LOOPBACK, parts.port or 80
