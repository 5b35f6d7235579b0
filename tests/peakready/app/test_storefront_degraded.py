"""Degraded mode: with cache and search frozen or stopped, orders go on and reads stay fast."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import App, Redis, Server

pytestmark = pytest.mark.lab

BOUND_S = 1.0  # PEAKREADY_APP_DEPENDENCY_TIMEOUT_S of the test app
SLACK_S = 0.6  # HTTP, scheduling, a loaded 2-core machine (load average 15+ seen)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def check_degraded(app: App) -> None:
    """What a client sees while cache and search are unavailable."""
    # Several rounds: the first pays the bound, the following ones hit the back-off.
    for product_id in (11, 12, 13):
        response, took = timed(
            lambda p=product_id: httpx.post(
                f"{app.url}/orders",
                json={"product_id": p, "quantity": 1},
                headers={"Idempotency-Key": f"degraded-{uuid.uuid4()}"},
                timeout=10,
            )
        )
        assert response.status_code == 201, response.text
        assert took < BOUND_S + SLACK_S

        response, took = timed(lambda p=product_id: httpx.get(f"{app.url}/products/{p}"))
        assert response.status_code == 200
        assert response.json()["id"] == product_id
        assert took < BOUND_S + SLACK_S

        response, took = timed(lambda: httpx.get(f"{app.url}/search", params={"q": "widget"}))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert took < BOUND_S + SLACK_S

    response, took = timed(lambda: httpx.get(f"{app.url}/products", timeout=10))
    assert response.status_code == 200
    assert took < BOUND_S + SLACK_S

    # Readiness never waits on cache or search: a load balancer's check must not time out.
    response, took = timed(lambda: httpx.get(f"{app.url}/readyz", timeout=10))
    assert took < BOUND_S + SLACK_S
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["degraded"] == ["cache", "search"]

    metrics = httpx.get(f"{app.url}/metrics").text
    assert 'storefront_dependency_degraded{dependency="cache"} 1.0' in metrics
    assert 'storefront_dependency_degraded{dependency="search"} 1.0' in metrics


def wait_recovered(app: App, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{app.url}/readyz", timeout=10).json()
        if body.get("degraded") == []:
            return
        time.sleep(0.2)
    raise AssertionError(f"app still degraded after {timeout}s: {body}")


def test_frozen_cache_and_search_do_not_stall_requests(
    app_server: App, redis_servers: Redis, searchd: Server
) -> None:
    frozen = [*redis_servers.servers, searchd]
    try:
        for server in frozen:
            server.freeze()
        check_degraded(app_server)
    finally:
        for server in frozen:
            server.thaw()
    wait_recovered(app_server)
    response = httpx.get(f"{app_server.url}/search", params={"q": "widget"})
    assert response.status_code == 200


def test_stopped_cache_and_search_still_accept_orders(
    app_server: App, redis_servers: Redis, searchd: Server
) -> None:
    stopped = [*redis_servers.servers, searchd]
    try:
        for server in stopped:
            server.stop()
        check_degraded(app_server)
    finally:
        for server in stopped:
            server.start()
    wait_recovered(app_server)
