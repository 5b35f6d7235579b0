"""Placing the drill's orders: idempotency keys, bounded retries, acknowledgement times."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from peakready.backup.ledger import HttpOrderClient, Ledger, place_batch
from peakready.load.ledger import LedgerWriter, read_ledger


class Storefront:
    """Answers POST /orders from a script of statuses, remembering keys like the app."""

    def __init__(self, script: list[int | str]) -> None:
        self.script = script
        self.seen: list[str] = []
        self.orders: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        self.seen.append(key)
        step = self.script.pop(0) if self.script else 201
        if step == "drop":
            raise httpx.ConnectError("connection refused", request=request)
        if step in (201, 200):
            order_id = self.orders.setdefault(key, len(self.orders) + 1)
            body = json.loads(request.content)
            return httpx.Response(step, json={"id": order_id, **body})
        return httpx.Response(int(step), json={"detail": "no"})


def client(storefront: Storefront) -> HttpOrderClient:
    return HttpOrderClient("http://127.0.0.1:22000", transport=httpx.MockTransport(storefront))


def test_only_loopback_endpoints_are_drilled() -> None:
    with pytest.raises(ValueError, match=r"only talks to 127\.0\.0\.1"):
        HttpOrderClient("http://10.0.0.5:80")


def test_a_5xx_or_a_dropped_connection_is_retried_with_the_same_key(tmp_path: Path) -> None:
    storefront = Storefront([503, "drop", 201, 201])
    ledger = Ledger()
    writer = LedgerWriter(tmp_path / "ledger.jsonl")
    placed = place_batch(client(storefront), ledger, "before", 2, [7, 8], writer=writer)
    writer.close()
    assert storefront.seen == [placed[0].key] * 3 + [placed[1].key]
    assert [(e.acknowledged, e.order_id, e.product_id) for e in placed] == [
        (True, 1, 7),
        (True, 2, 8),
    ]
    assert all(e.sent <= (e.acked or 0) for e in placed)
    assert [e.key for e in read_ledger(tmp_path / "ledger.jsonl")] == [e.key for e in placed]


def test_a_refused_order_is_not_retried_and_not_acknowledged() -> None:
    storefront = Storefront([409])
    placed = place_batch(client(storefront), Ledger(), "before", 1, [1])
    assert len(storefront.seen) == 1
    assert (placed[0].acknowledged, placed[0].error) == (False, "HTTP 409")


def test_retries_are_bounded() -> None:
    storefront = Storefront(["drop"] * 10)
    placed = place_batch(client(storefront), Ledger(), "before", 1, [1], attempts=3)
    assert len(storefront.seen) == 3 and not placed[0].acknowledged
    assert "connection refused" in (placed[0].error or "")
