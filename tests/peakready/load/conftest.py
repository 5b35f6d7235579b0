"""A small in-memory storefront speaking DESIGN §4's HTTP contract, for load tests.

It fails on purpose: every ``fail_every``-th new order is committed and then answered
with 503, as a storefront whose response is lost after the commit would — the case
where only a retry with the same idempotency key avoids a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class FakeStorefront:
    def __init__(
        self, products: int = 5, stock: int = 1000, fail_every: int = 3, delay_s: float = 0.0
    ) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.products = {
            i: {"id": i, "name": f"lamp {i}", "price": "9.90", "stock": stock}
            for i in range(1, products + 1)
        }
        self.initial = stock
        self.orders: dict[str, dict[str, Any]] = {}
        self.fail_every = fail_every
        self.posts = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeStorefront:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def audit(self, keys: list[str]) -> dict[str, Any]:
        sold: dict[int, int] = {}
        for order in self.orders.values():
            sold[order["product_id"]] = sold.get(order["product_id"], 0) + order["quantity"]
        return {
            "orders": {k: self.orders.get(k) for k in keys},
            "orders_per_key": {k: int(k in self.orders) for k in keys},
            "products": [
                {
                    "id": p["id"],
                    "stock": p["stock"],
                    "initial_stock": self.initial,
                    "sold": sold.get(p["id"], 0),
                }
                for p in self.products.values()
            ],
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                with contextlib.suppress(ConnectionResetError):  # the generator stopped
                    super().handle()

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if shop.delay_s and self.path != "/products":
                    time.sleep(shop.delay_s)
                if self.path == "/products":
                    self._send(200, list(shop.products.values()))
                elif self.path.startswith("/products/"):
                    product = shop.products.get(int(self.path.rsplit("/", 1)[1]))
                    self._send(200 if product else 404, product or {"detail": "not found"})
                elif self.path.startswith("/search"):
                    self._send(200, list(shop.products.values())[:2])
                else:
                    self._send(200, {"status": "ok"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                key = self.headers.get("Idempotency-Key", "")
                with shop.lock:
                    if key in shop.orders:
                        self._send(200, shop.orders[key])
                        return
                    shop.posts += 1
                    product = shop.products[int(body["product_id"])]
                    product["stock"] -= int(body["quantity"])
                    order = {
                        "id": len(shop.orders) + 1,
                        "product_id": product["id"],
                        "quantity": int(body["quantity"]),
                        "created_at": "now",
                    }
                    shop.orders[key] = order
                    lose_answer = shop.fail_every and shop.posts % shop.fail_every == 0
                self._send(503, {"detail": "lost"}) if lose_answer else self._send(201, order)

        return Handler


@pytest.fixture
def storefront() -> Iterator[FakeStorefront]:
    with FakeStorefront() as shop:
        yield shop


@pytest.fixture
def make_storefront() -> Iterator[Callable[..., FakeStorefront]]:
    """Start fake storefronts with other settings (``fail_every``, ``delay_s``)."""
    shops: list[FakeStorefront] = []

    def make(**settings: Any) -> FakeStorefront:
        shop = FakeStorefront(**settings).__enter__()
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.__exit__()
