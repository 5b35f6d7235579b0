"""The bench's HTTP client against a small local server on 127.0.0.1 (no lab)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from peakready.bench.load import http_step
from peakready.errors import PeakreadyError
from peakready.load.rawhttp import Request, order_request


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n0\r\n\r\n")
            return
        code = 503 if self.path == "/down" else 200
        body = b'{"ok": true}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        keyed = bool(self.headers.get("Idempotency-Key")) and b"product_id" in body
        self.send_response(201 if keyed else 422)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_keep_alive_requests_are_counted_with_their_latency(port: int) -> None:
    step = http_step(port, 2, lambda i: Request("GET", "/x"), seconds=0.5, warmup_s=0.1)
    assert step.ok > 10 and step.errors == 0
    assert 0 < step.p50_ms <= step.p99_ms
    assert step.rate == pytest.approx(step.ok / step.seconds)


def test_chunked_answers_are_read_to_the_end(port: int) -> None:
    step = http_step(port, 1, lambda i: Request("GET", "/chunked"), seconds=0.3, warmup_s=0.0)
    assert step.ok > 3 and step.errors == 0


def test_answers_outside_ok_count_as_errors(port: int) -> None:
    step = http_step(port, 1, lambda i: Request("GET", "/down"), seconds=0.3, warmup_s=0.0)
    assert step.ok == 0 and step.errors > 3
    assert not step.meets(100.0)


def test_orders_carry_a_fresh_idempotency_key_and_count_only_201(port: int) -> None:
    keys = {dict(order_request(1).headers)["Idempotency-Key"] for _ in range(3)}
    assert len(keys) == 3
    step = http_step(port, 1, lambda i: order_request(1 + i % 3), seconds=0.3, warmup_s=0.0)
    assert step.ok > 3 and step.errors == 0


def test_a_refused_port_is_errors_not_a_hang() -> None:
    step = http_step(1, 1, lambda i: Request("GET", "/"), seconds=0.3, warmup_s=0.0)
    assert step.ok == 0 and step.errors > 0


def test_concurrency_is_bounded() -> None:
    with pytest.raises(PeakreadyError, match=r"expected 1\.\.256"):
        http_step(8080, 1000, lambda i: Request("GET", "/"))
