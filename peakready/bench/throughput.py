"""Storefront throughput within the latency objective, against the database's own ceiling.

Three figures, measured on a running lab (127.0.0.1 only, every step bounded):

- orders/s through HAProxy at p99 ≤ the objective (concurrency stepped up until p99
  crosses it), against the ceiling of the same order transaction run straight against
  the PostgreSQL primary — psycopg, the storefront's own SQL (``peakready.app.db``) —
  found the same way, at its own best concurrency (more clients than that only queue on
  the hot products' row locks, which would lower the ceiling and flatter the ratio);
  each path is then confirmed at its level, alternating with the other so both see the
  same machine; the ratio of the medians is the figure;
- requests/s one storefront instance serves within the objective, with the drill mix
  (orders, product reads through the cache, searches), straight at that instance.

With a queue tier, both order paths write the outbox row with each order (the order's
own cost), but the broker is held still (SIGSTOP) during each order step, and the
pipeline drained after it. On AWS the broker and the back office run on machines of
their own; on the lab's 2 cores their CPU would otherwise land in whichever step runs
while they catch up with the previous one's orders (≈ 6,000 per direct step). The
relays keep to the storefront, and the drill-mix steps run with the whole pipeline.
The pipeline's own cost and drain rate are ``make bench`` phase ``pipeline``.

Orders go to bench-only products with a stock far beyond any run (consistent
``initial_stock``), so the seed catalogue the drills use keeps its stock.
"""

from __future__ import annotations

import signal
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import psycopg

import peakready.bench.capacity as capacity
import peakready.bench.cpu as cpu
from peakready.app.db import place_order  # the storefront's own order transaction
from peakready.bench.capacity import Capacity, Step
from peakready.bench.load import db_step, http_step
from peakready.bench.stats import summarise
from peakready.errors import PeakreadyError
from peakready.lab import control, observe
from peakready.lab.components.queue import queue_depth
from peakready.lab.state import LabState
from peakready.lab.supervisor import scaling_suspended
from peakready.load.rawhttp import Request, order_request
from peakready.load.settings import SEARCH_TERMS, LoadSettings

#: Bench-only products: ids BENCH_PRODUCT_BASE+1 … +BENCH_PRODUCTS.
BENCH_PRODUCT_BASE = 900_000
BENCH_PRODUCTS = 20
BENCH_STOCK = 1_000_000_000
OBJECTIVE_P99_MS = 100.0
#: How long the pipeline may take to drain what one order step left.
DRAIN_S = 180.0
#: The drill load's mix per 20 requests (LoadSettings' rates: 5 orders, 12 product reads,
#: 3 searches).
_DRILL = LoadSettings("http://127.0.0.1")
MIX = tuple(
    kind
    for kind, rate in (
        ("order", _DRILL.orders_per_s),
        ("product", _DRILL.reads_per_s),
        ("search", _DRILL.searches_per_s),
    )
    for _ in range(round(20 * rate / _DRILL.total_per_s))
)


@dataclass
class Throughput:
    orders_haproxy: Capacity | None = None
    orders_direct_db: Capacity | None = None
    per_instance: Capacity | None = None
    confirm_http: list[Step] = field(default_factory=list)
    confirm_db: list[Step] = field(default_factory=list)
    confirm_instance: list[Step] = field(default_factory=list)
    instance: str = ""
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # path → kind → CPU s
    cpu_ops: dict[str, int] = field(default_factory=dict)

    def account(self, path: str, state: LabState, step: Callable[[], Step]) -> Step:
        """Run ``step``, adding the lab's CPU time per kind over it to ``path``'s tally."""
        before = cpu.snapshot(state)
        result = step()
        after = cpu.snapshot(state)
        tally = self.cpu.setdefault(path, {})
        for kind, used in after.items():
            tally[kind] = tally.get(kind, 0.0) + max(used - before.get(kind, 0.0), 0.0)
        self.cpu_ops[path] = self.cpu_ops.get(path, 0) + result.ok
        return result

    def reset_cpu(self, *paths: str) -> None:
        for path in paths:
            self.cpu.pop(path, None)
            self.cpu_ops.pop(path, None)

    def cpu_ms_per_op(self) -> dict[str, dict[str, float]]:
        zero = dict.fromkeys(cpu.KINDS, 0.0)
        return {
            path: cpu.per_operation(zero, used, self.cpu_ops.get(path, 0))
            for path, used in self.cpu.items()
        }

    def ratio(self) -> float | None:
        http = [s.rate for s in self.confirm_http]
        db = [s.rate for s in self.confirm_db]
        if not http or not db or statistics.median(db) <= 0:
            return None
        return float(statistics.median(http) / statistics.median(db))

    def requests_per_instance(self) -> float | None:
        good = [s.rate for s in self.confirm_instance if s.meets(OBJECTIVE_P99_MS)]
        if good:
            return float(statistics.median(good))
        best = self.per_instance.best if self.per_instance else None
        return best.rate if best else None

    def as_dict(self) -> dict[str, Any]:
        def figure(steps: list[Step]) -> dict[str, Any]:
            spread = summarise([s.rate for s in steps])
            return {
                "rate": round(statistics.median([s.rate for s in steps]), 1) if steps else None,
                "p99_ms": round(max(s.p99_ms for s in steps), 1) if steps else None,
                "spread": spread.as_dict() if spread else None,
                "confirmed": capacity.confirmed(steps, OBJECTIVE_P99_MS) if steps else False,
                "runs": [s.as_dict() for s in steps],
            }

        ratio = self.ratio()
        rpi = self.requests_per_instance()
        return {
            "objective_p99_ms": OBJECTIVE_P99_MS,
            "orders_per_s_haproxy": figure(self.confirm_http),
            "orders_per_s_direct_db": figure(self.confirm_db),
            "ratio": round(ratio, 3) if ratio is not None else None,
            "orders_search": self.orders_haproxy.as_dict() if self.orders_haproxy else None,
            "direct_db_search": (
                self.orders_direct_db.as_dict() if self.orders_direct_db else None
            ),
            "requests_per_instance": round(rpi, 1) if rpi is not None else None,
            "instance": self.instance,
            "instance_requests": figure(self.confirm_instance),
            "instance_search": self.per_instance.as_dict() if self.per_instance else None,
            "cpu_ms_per_op": self.cpu_ms_per_op(),
        }


def measure(
    state: LabState,
    say: Callable[[str], None] = lambda _: None,
    seconds: float = 4.0,
    repeats: int = 7,
) -> Throughput:
    """All three figures on the running lab ``state``, its app group held at its size."""
    with scaling_suspended(state.lab_dir):
        return _measure(state, say, seconds, repeats)


def _measure(
    state: LabState, say: Callable[[str], None], seconds: float, repeats: int
) -> Throughput:
    result = Throughput()
    db = _Database(state)
    db.ensure_products()
    http_port = _port_of(str(state.endpoints["http"]))

    def orders(c: int) -> Step:
        say(f"orders via HAProxy, {c} clients")
        with db.broker_held(say):
            return http_step(http_port, c, _orders, seconds)

    def direct(c: int) -> Step:
        say(f"orders straight to PostgreSQL, {c} clients")
        with db.broker_held(say):
            return db_step(db.connect, db.order, c, seconds)

    result.orders_haproxy = capacity.search(orders, OBJECTIVE_P99_MS)
    result.orders_direct_db = capacity.search(direct, OBJECTIVE_P99_MS)
    ceiling = result.orders_direct_db.best
    # No ceiling (even one client missed the objective straight to PostgreSQL): no ratio.
    direct_level = ceiling.concurrency if ceiling is not None else 0
    for level in capacity.confirm_levels(result.orders_haproxy) if direct_level else []:
        result.confirm_http, result.confirm_db = [], []
        result.reset_cpu("orders_haproxy", "orders_direct_db")
        levels = (level, direct_level)
        _confirm_orders(result, state, db, http_port, levels, seconds, repeats, say)
        if capacity.confirmed(result.confirm_http, OBJECTIVE_P99_MS):
            break
        say(f"{level} clients missed the objective on confirmation: one level down")

    instance = _instance(state)
    result.instance = str(instance["id"])
    port = int(instance["port"])

    def mixed(c: int) -> Step:
        say(f"one instance ({result.instance}), drill mix, {c} clients")
        return http_step(port, c, _mixed, seconds)

    result.per_instance = capacity.search(mixed, OBJECTIVE_P99_MS)
    for level in capacity.confirm_levels(result.per_instance):
        result.confirm_instance = []
        result.reset_cpu("instance_mix")
        for i in range(repeats):
            say(f"confirm {i + 1}/{repeats}: one instance, {level} clients")
            step = result.account("instance_mix", state, partial(mixed, level))
            result.confirm_instance.append(step)
        if capacity.confirmed(result.confirm_instance, OBJECTIVE_P99_MS):
            break
    return result


def _confirm_orders(
    result: Throughput,
    state: LabState,
    db: _Database,
    http_port: int,
    levels: tuple[int, int],
    seconds: float,
    repeats: int,
    say: Callable[[str], None],
) -> None:
    """HTTP and direct-database order steps at their ``levels``, alternating, so that
    both paths see the same background load."""
    http, direct = levels
    for i in range(repeats):
        say(f"confirm {i + 1}/{repeats}: orders via HAProxy, {http} clients")
        with db.broker_held(say):
            step = result.account(
                "orders_haproxy", state, lambda: http_step(http_port, http, _orders, seconds)
            )
        result.confirm_http.append(step)
        say(f"confirm {i + 1}/{repeats}: orders straight to PostgreSQL, {direct} clients")
        with db.broker_held(say):
            step = result.account(
                "orders_direct_db", state, lambda: db_step(db.connect, db.order, direct, seconds)
            )
        result.confirm_db.append(step)


# private


def _orders(i: int) -> Request:
    return order_request(BENCH_PRODUCT_BASE + 1 + i % BENCH_PRODUCTS)


def _mixed(i: int) -> Request:
    kind = MIX[i % len(MIX)]
    if kind == "order":
        return _orders(i)
    if kind == "product":
        return Request("GET", f"/products/{1 + i % 50}")
    return Request("GET", f"/search?q={SEARCH_TERMS[i % len(SEARCH_TERMS)]}")


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise PeakreadyError(f"lab endpoint {url!r}: expected http://127.0.0.1:<port>")
    return parts.port


def _instance(state: LabState) -> dict[str, Any]:
    ready = [i for i in observe.app_instances(state) if i.get("ready")]
    if not ready:
        raise PeakreadyError("lab: no ready storefront instance to measure", exit_code=1)
    return sorted(ready, key=lambda i: int(i["port"]))[0]


class _Database:
    """The lab's current primary, as the storefront's own database user."""

    def __init__(self, state: LabState) -> None:
        leader = observe.patroni_cluster(state).get("leader")
        members = {m["name"]: m for m in state.endpoints.get("db_members", [])}
        if leader not in members:
            raise PeakreadyError(
                "lab: no PostgreSQL primary (see `peakready lab status`)", exit_code=1
            )
        self.port = int(members[leader]["port"])
        self.password = state.secrets()["db_app_password"]
        # The storefront writes an outbox row with each order when the lab has a queue.
        self.outbox = "queue_broker" in state.outputs
        self.state = state

    def connect(self) -> psycopg.Connection[Any]:
        """Autocommit, as the storefront's pools: every order commits (and waits for the
        synchronous standby) on its own, exactly as on the HTTP path."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname="shop",
            user="shop",
            password=self.password,
            connect_timeout=2,
            autocommit=True,
        )

    def order(self, conn: psycopg.Connection[Any], i: int) -> bool:
        product = BENCH_PRODUCT_BASE + 1 + i % BENCH_PRODUCTS
        return place_order(conn, f"bench-db-{uuid.uuid4()}", product, 1, self.outbox).created

    @contextmanager
    def broker_held(self, say: Callable[[str], None]) -> Iterator[None]:
        """The broker's nodes stopped for the block, resumed after it even when it fails;
        then the outbox and the queue drained (PeakreadyError after ``DRAIN_S``)."""
        nodes = [p["name"] for p in self.state.by_kind("rabbitmq") if p.get("node")]
        if not self.outbox or not nodes:
            yield
            return
        for name in nodes:
            control.signal_tree(self.state, name, signal.SIGSTOP)
        try:
            yield
        finally:
            for name in nodes:
                control.signal_tree(self.state, name, signal.SIGCONT)
        say("draining the order pipeline")
        self.wait_drained(nodes)

    def wait_drained(self, nodes: list[str]) -> None:
        ports = [int(self.state.process(n)["port"]) for n in nodes]
        queue = str(self.state.endpoints["rabbitmq_queue"])
        password = self.state.secrets()["rabbitmq_password"]
        deadline = time.monotonic() + DRAIN_S
        with self.connect() as conn:
            while True:
                row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
                pending = row[0] if row else 0
                if not pending:
                    try:
                        if queue_depth(ports[0], password, queue, 2.0) == 0:
                            return
                    except PeakreadyError:
                        ports = ports[1:] + ports[:1]  # ask another node next time
                if time.monotonic() > deadline:
                    raise PeakreadyError(
                        f"order pipeline not drained after {DRAIN_S:.0f} s"
                        f" ({pending} orders in the outbox)",
                        exit_code=1,
                    )
                time.sleep(0.5)

    def ensure_products(self) -> None:
        rows = [
            (BENCH_PRODUCT_BASE + n, f"Bench item {n}", BENCH_STOCK, BENCH_STOCK)
            for n in range(1, BENCH_PRODUCTS + 1)
        ]
        with self.connect() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO products (id, name, price, stock, initial_stock)"
                " VALUES (%s, %s, 1.00, %s, %s) ON CONFLICT (id) DO NOTHING",
                rows,
            )
