"""The storefront app against real PostgreSQL, Redis + Sentinel and searchd servers."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.lab


def key() -> str:
    return f"test-{uuid.uuid4()}"


def order(url: str, product_id: int, quantity: int = 1, k: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": k} if k is not None else {}
    return httpx.post(
        f"{url}/orders",
        json={"product_id": product_id, "quantity": quantity},
        headers=headers,
        timeout=10,
    )


def test_healthz_reports_az_and_instance(app_server) -> None:
    response = httpx.get(f"{app_server.url}/healthz")
    assert response.status_code == 200
    assert response.json()["az"] == "test-az-a"
    assert response.json()["instance"] == "app-test-0"


def test_same_key_twice_gives_one_order(app_server, postgres) -> None:
    k = key()
    first = order(app_server.url, 1, 2, k)
    second = order(app_server.url, 1, 2, k)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,)) == [
        (1,)
    ]
