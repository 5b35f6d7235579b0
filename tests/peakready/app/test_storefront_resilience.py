"""A Redis primary failing over under order load, and a graceful stop with a request in flight."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest
import redis

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import App, Helpers, Postgres

pytestmark = pytest.mark.lab

FAILOVER_REDIS_PORTS = (23052, 23053)
FAILOVER_SENTINEL_PORT = 23061
FAILOVER_APP_PORT = 23101
SHUTDOWN_APP_PORT = 23102


class OrderLoad(threading.Thread):
    """Orders one after another until stopped (bounded to 600 requests and 30 s)."""

    def __init__(self, url: str, product_id: int) -> None:
        super().__init__(daemon=True)
        self.url, self.product_id = url, product_id
        self.results: list[tuple[int, float]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=10) as client:
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                if len(self.results) >= 600:
                    break
                start = time.monotonic()
                response = client.post(
                    f"{self.url}/orders",
                    json={"product_id": self.product_id, "quantity": 1},
                    headers={"Idempotency-Key": f"load-{uuid.uuid4()}"},
                )
                self.results.append((response.status_code, time.monotonic() - start))
                time.sleep(0.01)


def sentinel_master(sentinel: redis.Redis, name: str) -> dict[str, str]:
    """``SENTINEL MASTER <name>`` as a dict (redis-py 6.4's sentinel_master() breaks here)."""
    flat = [item.decode() for item in sentinel.execute_command("SENTINEL", "MASTER", name)]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_cache_primary_loss_leaves_orders_unaffected(
    workdir: Path, postgres: Postgres, extra_apps: list[App], helpers: Helpers
) -> None:
    make_redis, start_app, wait_for = helpers.make_redis, helpers.start_app, helpers.wait_for
    cache = make_redis(workdir / "redis-failover", FAILOVER_REDIS_PORTS, FAILOVER_SENTINEL_PORT)
    load: OrderLoad | None = None
    try:
        for server in cache.servers:
            server.start()
        sentinel = redis.Redis(port=FAILOVER_SENTINEL_PORT, socket_timeout=1)
        # Sentinel learns the replica from the primary's INFO (every 10 s at first).
        wait_for(
            lambda: sentinel_master(sentinel, cache.master_name)["num-slaves"] == "1",
            15,
            "sentinel",
        )
        app = start_app(workdir, postgres, FAILOVER_APP_PORT, cache, None)
        extra_apps.append(app)
        new_master = redis.Redis(
            port=FAILOVER_REDIS_PORTS[1], password=cache.password, socket_timeout=1
        )
        postgres.execute(  # restock, so that only the cache could make an order fail
            "UPDATE products SET stock = stock + 10000, initial_stock = initial_stock + 10000"
            " WHERE id = 15"
        )
        load = OrderLoad(app.url, 15)
        load.start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        assert cache.primary.proc is not None
        cache.primary.proc.kill()
        wait_for(
            lambda: (
                sentinel_master(sentinel, cache.master_name)["port"] == str(FAILOVER_REDIS_PORTS[1])
            ),
            15,
            "sentinel failover",
        )

        def cached_on_new_master() -> bool:
            httpx.get(f"{app.url}/products/16")
            return new_master.get("product:16") is not None

        wait_for(cached_on_new_master, 10, "cache on the new primary")
        cache_back_s = time.monotonic() - killed_at
        time.sleep(0.5)
    finally:
        if load is not None:
            load.stop_event.set()
            load.join(15)
        for server in reversed(cache.servers):
            server.stop()
    statuses = [status for status, _ in load.results]
    assert len(statuses) > 50
    assert set(statuses) == {201}, statuses
    assert max(took for _, took in load.results) < 1.0
    assert cache_back_s < 5.0  # DESIGN §8 cache-primary-loss target


def test_sigterm_drains_then_finishes_the_request_in_flight(
    workdir: Path, postgres: Postgres, extra_apps: list[App], helpers: Helpers
) -> None:
    """DRAIN_S=1: readiness off at once, still serving; then the listener closes while a
    request waits on a row lock, and that request still completes with 201."""
    start_app, wait_for, port_open = helpers.start_app, helpers.wait_for, helpers.port_open
    app = start_app(workdir, postgres, SHUTDOWN_APP_PORT, None, None, drain_s="1")
    extra_apps.append(app)
    assert app.server.proc is not None
    results: list[httpx.Response] = []
    with psycopg.connect(postgres.admin_dsn()) as blocker:
        # Hold the product row so that the order waits inside its transaction.
        blocker.execute("SELECT stock FROM products WHERE id = 20 FOR UPDATE")
        request = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    f"{app.url}/orders",
                    json={"product_id": 20, "quantity": 1},
                    headers={"Idempotency-Key": f"inflight-{uuid.uuid4()}"},
                    timeout=30,
                )
            )
        )
        request.start()
        wait_for(
            lambda: (
                postgres.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'shop'"
                    " AND wait_event_type = 'Lock'"
                )[0][0]
                == 1
            ),
            10,
            "the order waiting on the row lock",
        )
        app.server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        ready = httpx.get(f"{app.url}/readyz", timeout=5)
        assert (ready.status_code, ready.json()["status"]) == (503, "draining")
        other = httpx.post(
            f"{app.url}/orders",
            json={"product_id": 21, "quantity": 1},
            headers={"Idempotency-Key": f"drain-{uuid.uuid4()}"},
            timeout=5,
        )
        assert other.status_code == 201  # still serving while the balancer takes it out
        wait_for(lambda: not port_open(SHUTDOWN_APP_PORT), 10, "listener closed")
        assert time.monotonic() - signalled >= 1.0
        assert app.server.proc.poll() is None  # still finishing the request in flight
        blocker.commit()
    request.join(20)
    assert results and results[0].status_code == 201
    # uvicorn re-raises SIGTERM after its graceful shutdown: "terminated by SIGTERM".
    assert app.server.proc.wait(10) in (0, -signal.SIGTERM)
