"""The load generator: headless Locust, run in its own process.

Run as ``python -m peakready.load --endpoint … --run-dir …``; it stops on SIGTERM or
SIGINT, when its parent dies, after ``duration_s`` or after ``max_orders``, whichever
comes first. Locust patches the standard library for gevent when imported, which is
why it lives in a process of its own and nothing else imports this module.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import httpx
from locust import FastHttpUser, User, constant_throughput, task
from locust.env import Environment

from peakready.load.ledger import LEDGER_FILE, LedgerEntry, LedgerWriter
from peakready.load.records import REQUESTS_FILE, RecordWriter, RequestRecord
from peakready.load.settings import SEARCH_TERMS, LoadSettings

log = logging.getLogger("peakready.load")

#: Statuses after which replaying the same order (same idempotency key) is safe and useful.
RETRYABLE = frozenset({0, 429, 500, 502, 503, 504})


class _Shared:
    """What all simulated users of one run share (one process, one gevent loop)."""

    settings: LoadSettings
    records: RecordWriter
    ledger: LedgerWriter
    products: list[int]
    orders_placed = 0
    stopping = False


def _attempt(
    user: FastHttpUser, kind: str, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """One HTTP attempt, recorded; returns the status (0: no answer) and the JSON body."""
    started = time.time()
    status, body, error = 0, None, ""
    try:
        with user.client.request(method, path, catch_response=True, **kwargs) as response:
            status = int(response.status_code or 0)
            if status == 0:
                error = type(response.error).__name__ if response.error else "no answer"
            elif 200 <= status < 300:
                try:
                    body = response.json()
                except ValueError:
                    body = None
            response.success()  # outcome judged below, not by Locust's stats
    except (OSError, gevent.Timeout) as exc:
        error = type(exc).__name__
    ok = 200 <= status < 300 or (kind == "order" and status == 409)
    _Shared.records.write(RequestRecord(started, time.time(), kind, status, ok, error))
    return status, body


class OrderUser(FastHttpUser):
    """Places orders, each with a fresh idempotency key, replayed with the SAME key on
    5xx/timeouts until acknowledged or the retry window closes."""

    fixed_count = 1
    wait_time = constant_throughput(1)

    @task
    def place_order(self) -> None:
        shared = _Shared
        if shared.stopping or shared.orders_placed >= shared.settings.max_orders:
            return
        shared.orders_placed += 1
        key = f"drill-{uuid.uuid4()}"
        product = random.choice(shared.products)
        quantity = random.randint(1, shared.settings.max_quantity)
        deadline = time.time() + shared.settings.retry_window_s
        pause = 0.1
        while True:
            status, body = _attempt(
                self,
                "order",
                "POST",
                "/orders",
                json={"product_id": product, "quantity": quantity},
                headers={"Idempotency-Key": key},
            )
            if status in (200, 201) and isinstance(body, dict) and "id" in body:
                shared.ledger.append(
                    LedgerEntry(key, int(body["id"]), product, quantity, time.time(), status)
                )
                return
            if status not in RETRYABLE or time.time() + pause > deadline or shared.stopping:
                return
            gevent.sleep(pause)
            pause = min(pause * 2, 1.0)


class ReadUser(FastHttpUser):
    """Reads products (through the cache)."""

    fixed_count = 1
    wait_time = constant_throughput(1)

    @task
    def read_product(self) -> None:
        _attempt(self, "product", "GET", f"/products/{random.choice(_Shared.products)}")


class SearchUser(FastHttpUser):
    """Searches the catalogue (through the search tier)."""

    fixed_count = 1
    wait_time = constant_throughput(1)

    @task
    def search(self) -> None:
        _attempt(self, "search", "GET", f"/search?q={random.choice(SEARCH_TERMS)}")


def _configure(settings: LoadSettings) -> list[type[User]]:
    """Spread each kind's rate over its users; kinds with rate 0 get no users."""
    classes: list[type[User]] = []
    users = settings.users_per_kind
    for cls, rate in (
        (OrderUser, settings.orders_per_s),
        (ReadUser, settings.reads_per_s),
        (SearchUser, settings.searches_per_s),
    ):
        if rate <= 0:
            continue
        cls.fixed_count = users
        cls.wait_time = constant_throughput(rate / users)
        cls.network_timeout = settings.request_timeout_s
        cls.connection_timeout = min(2.0, settings.request_timeout_s)
        classes.append(cls)
    return classes


def _catalogue(endpoint: str, deadline: float) -> list[int]:
    """Product ids from ``GET /products``, retried until ``deadline``."""

    while True:
        try:
            answer = httpx.get(f"{endpoint}/products", timeout=3.0)
            if answer.status_code == 200:
                ids = [int(p["id"]) for p in answer.json() if int(p.get("stock", 0)) > 0]
                if ids:
                    return ids[:200]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("catalogue not readable yet: %s", exc)
        if time.time() > deadline:
            raise SystemExit(f"load: {endpoint}/products did not answer with products")
        time.sleep(0.5)


def run(settings: LoadSettings, run_dir: Path) -> int:
    """Send load until told to stop or a bound is reached; returns an exit code."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _Shared.settings = settings
    _Shared.products = _catalogue(settings.endpoint, time.time() + settings.startup_timeout_s)
    _Shared.records = RecordWriter(run_dir / REQUESTS_FILE)
    _Shared.ledger = LedgerWriter(run_dir / LEDGER_FILE)
    classes = _configure(settings)
    env = Environment(user_classes=classes, host=settings.endpoint, stop_timeout=5)
    runner = env.create_local_runner()
    parent = os.getppid()

    def stop(*_: Any) -> None:
        _Shared.stopping = True
        runner.quit()

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    total_users = len(classes) * settings.users_per_kind
    # Ramp up over ~2 s rather than all at once: a burst at start is not the steady state.
    runner.start(total_users, spawn_rate=max(total_users / 2.0, 1.0))
    deadline = time.time() + settings.duration_s

    def watchdog() -> None:
        while not _Shared.stopping:
            if (
                time.time() > deadline
                or os.getppid() != parent
                or _Shared.orders_placed >= settings.max_orders > 0
            ):
                stop()
                return
            gevent.sleep(0.5)

    gevent.spawn(watchdog)
    if runner.greenlet is not None:
        runner.greenlet.join()
    _Shared.records.close()
    _Shared.ledger.close()
    return 0
