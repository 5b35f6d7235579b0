"""The load generator: headless Locust, run in its own process.

Run as ``python -m peakready.load --endpoint … --run-dir …``; it stops on SIGTERM or
SIGINT, when its parent dies, after ``duration_s`` or after ``max_orders``, whichever
comes first. Locust patches the standard library for gevent when imported, which is
why it lives in a process of its own and nothing else imports this module.

Two kinds of load:

- *steady* (the failover drills): a fixed rate of orders, product reads and searches,
  spread over a few users of each kind;
- *peak* (``settings.profile``): an open model, as k6's ``ramping-arrival-rate``. A
  :class:`PeakShape` (Locust's ``LoadTestShape``) sets the number of :class:`PeakUser`
  from the profile's arrival rate; each user is an arrival stream that starts every
  request in a greenlet of its own and does not wait for the answer, so requests keep
  arriving when the stack slows down, as at a real peak. In-flight requests are bounded
  per user; an arrival beyond the bound is counted as *dropped* by the generator. After
  the profile the baseline goes on (a shop's traffic does not stop after its peak)
  until the generator is stopped or ``duration_s`` passes.

Either runs in one process (a local runner) or as a Locust master with workers
(:func:`run_master`, :func:`run_worker`): every worker keeps its own shard of requests
and ledger, and streams it to the master, which writes it to ``<run>/shards/<worker>/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import httpx
from locust import FastHttpUser, LoadTestShape, User, task
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
from locust.env import Environment
from locust.runners import MasterRunner, Runner, WorkerRunner

from peakready.load.ledger import LEDGER_FILE, LedgerEntry, LedgerWriter
from peakready.load.pacing import Pacer
from peakready.load.process import WORKERS_DIR
from peakready.load.records import (
    GENERATOR_FILE,
    PROFILE_FILE,
    REQUESTS_FILE,
    SHARDS_DIR,
    RecordWriter,
    RequestRecord,
)
from peakready.load.settings import SEARCH_TERMS, LoadSettings
from peakready.load.shape import PeakProfile

log = logging.getLogger("peakready.load")

#: Statuses after which replaying the same order (same idempotency key) is safe and useful.
RETRYABLE = frozenset({0, 429, 500, 502, 503, 504})
#: Arrivals/s one PeakUser offers at most; the shape adds users as the rate grows.
PER_USER_RATE = 25.0
#: Requests one PeakUser keeps in flight at most (its connection pool, too).
PER_USER_IN_FLIGHT = 100
#: How often a worker streams its new requests and ledger entries to the master.
SHIP_EVERY_S = 1.0
#: A worker waits this long for a master to start a run, then gives up.
WORKER_JOIN_S = 600.0


class _Shared:
    """What all simulated users of one process share (one gevent loop)."""

    settings: LoadSettings
    profile: PeakProfile | None = None
    records: RecordWriter
    ledger: LedgerWriter
    products: list[int]
    hot: list[int]
    started = 0.0  # epoch seconds the run (and its profile) started
    orders_placed = 0
    sent = 0
    dropped = 0
    stopping = False
    outbox: list[tuple[str, dict[str, Any]]] | None = None  # a worker's, for the master

    @classmethod
    def configure(cls, settings: LoadSettings, products: list[int], run_dir: Path) -> None:
        cls.settings = settings
        cls.profile = PeakProfile.from_dict(settings.profile) if settings.profile else None
        cls.hot = list(settings.hot_products) or products[:1]
        cls.products = [p for p in products if p not in cls.hot] or products
        run_dir.mkdir(parents=True, exist_ok=True)
        cls.records = RecordWriter(run_dir / REQUESTS_FILE)
        cls.ledger = LedgerWriter(run_dir / LEDGER_FILE)

    @classmethod
    def record(cls, record: RequestRecord) -> None:
        cls.sent += 1
        cls.records.write(record)
        if cls.outbox is not None:
            cls.outbox.append((REQUESTS_FILE, record.as_dict()))

    @classmethod
    def acknowledge(cls, entry: LedgerEntry) -> None:
        cls.ledger.append(entry)
        if cls.outbox is not None:
            cls.outbox.append((LEDGER_FILE, entry.as_dict()))

    @classmethod
    def close(cls) -> None:
        cls.records.close()
        cls.ledger.close()


def _attempt(
    user: FastHttpUser, kind: str, method: str, path: str, attempt: int = 1, **kwargs: Any
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
    ok = 200 <= status < 300 or (kind in ("order", "hot_order") and status == 409)
    _Shared.record(RequestRecord(started, time.time(), kind, status, ok, error, attempt))
    return status, body


def _order(user: FastHttpUser, kind: str, product: int, quantity: int) -> None:
    """One order with a fresh idempotency key, replayed with the SAME key on 5xx,
    429 and timeouts until acknowledged or refused (409), or the retry window closes."""
    shared = _Shared
    shared.orders_placed += 1
    key = f"drill-{uuid.uuid4()}"
    deadline = time.time() + shared.settings.retry_window_s
    pause = 0.1
    for attempt in range(1, 1000):
        status, body = _attempt(
            user,
            kind,
            "POST",
            "/orders",
            attempt,
            json={"product_id": product, "quantity": quantity},
            headers={"Idempotency-Key": key},
        )
        if status in (200, 201) and isinstance(body, dict) and "id" in body:
            shared.acknowledge(
                LedgerEntry(key, int(body["id"]), product, quantity, time.time(), status)
            )
            return
        if status not in RETRYABLE or time.time() + pause > deadline or shared.stopping:
            return
        # Jittered exponential backoff: thousands of buyers must not retry in lockstep.
        gevent.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 1.0)


# --------------------------------------------------------------------------- steady


class SteadyUser(FastHttpUser):
    """A user at a steady rate, one request per ``period_s``, on a phase of its own
    (``peakready.load.pacing``)."""

    abstract = True
    period_s = 1.0  # set with the user's rate (_steady_users)

    def on_start(self) -> None:
        self.pacer = Pacer.started(self.period_s, time.monotonic())
        gevent.sleep(self.pacer.next_at - time.monotonic())

    def wait_time(self) -> float:
        return self.pacer.wait(time.monotonic())


class OrderUser(SteadyUser):
    """Places orders at a steady rate."""

    fixed_count = 1

    @task
    def place_order(self) -> None:
        shared = _Shared
        if shared.stopping or shared.orders_placed >= shared.settings.max_orders:
            return
        quantity = random.randint(1, shared.settings.max_quantity)
        _order(self, "order", random.choice(shared.products), quantity)


class ReadUser(SteadyUser):
    """Reads products (through the cache)."""

    fixed_count = 1

    @task
    def read_product(self) -> None:
        _attempt(self, "product", "GET", f"/products/{random.choice(_Shared.products)}")


class SearchUser(SteadyUser):
    """Searches the catalogue (through the search tier)."""

    fixed_count = 1

    @task
    def search(self) -> None:
        _attempt(self, "search", "GET", f"/search?q={random.choice(SEARCH_TERMS)}")


def _steady_users(settings: LoadSettings) -> list[type[FastHttpUser]]:
    """Spread each kind's rate over its users; kinds with rate 0 get no users."""
    classes: list[type[FastHttpUser]] = []
    users = settings.users_per_kind
    for cls, rate in (
        (OrderUser, settings.orders_per_s),
        (ReadUser, settings.reads_per_s),
        (SearchUser, settings.searches_per_s),
    ):
        if rate <= 0:
            continue
        cls.fixed_count = users
        cls.period_s = users / rate
        classes.append(cls)
    return classes


# --------------------------------------------------------------------------- peak


def _elapsed() -> float:
    return time.time() - _Shared.started


def _rates(profile: PeakProfile, t: float) -> dict[str, float]:
    """The profile's arrival rates at ``t``; after its end, the baseline's (traffic goes
    on after a peak: until the control stops it, bounded by ``duration_s``)."""
    return profile.rates_at(t if t < profile.duration_s else 0.0)


class PeakUser(FastHttpUser):
    """One arrival stream of the peak profile: Poisson arrivals at the profile's rate ÷
    the number of users, each kind drawn by the profile's mix at that moment."""

    concurrency = PER_USER_IN_FLIGHT

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.in_flight = gevent.pool.Pool(PER_USER_IN_FLIGHT)

    def wait_time(self) -> float:
        profile = _Shared.profile
        rate = sum(_rates(profile, _elapsed()).values()) if profile else 0.0
        if rate <= 0:
            return 0.5
        per_user = rate / max(1, math.ceil(rate / PER_USER_RATE))
        return random.expovariate(per_user)

    @task
    def arrive(self) -> None:
        shared, profile = _Shared, _Shared.profile
        if shared.stopping or profile is None:
            return
        rates = {k: v for k, v in _rates(profile, _elapsed()).items() if v > 0}
        if not rates:
            return
        kind = random.choices(list(rates), list(rates.values()))[0]
        if self.in_flight.full():
            shared.dropped += 1
            return
        if kind == "order":
            if shared.orders_placed >= shared.settings.max_orders:
                return
            quantity = random.randint(1, shared.settings.max_quantity)
            self.in_flight.spawn(_order, self, kind, random.choice(shared.products), quantity)
        elif kind == "hot_order":
            self.in_flight.spawn(_order, self, kind, random.choice(shared.hot), 1)
        elif kind == "product":
            product = random.choice(shared.products)
            self.in_flight.spawn(_attempt, self, kind, "GET", f"/products/{product}")
        else:
            term = random.choice(SEARCH_TERMS)
            self.in_flight.spawn(_attempt, self, kind, "GET", f"/search?q={term}")


class PeakShape(LoadTestShape):
    """Users for the profile's arrival rate, tick by tick; None ends the run."""

    profile: PeakProfile | None = None

    def tick(self) -> tuple[int, float] | None:
        profile = self.profile
        if profile is None or _Shared.stopping:
            return None
        rate = sum(_rates(profile, self.get_run_time()).values())
        users = max(1, math.ceil(rate / PER_USER_RATE))
        return users, 1000.0


# --------------------------------------------------------------------------- runs


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


def _user_classes(settings: LoadSettings) -> list[type[FastHttpUser]]:
    classes: list[type[FastHttpUser]] = [PeakUser] if settings.profile else _steady_users(settings)
    for cls in classes:
        cls.network_timeout = settings.request_timeout_s
        cls.connection_timeout = min(2.0, settings.request_timeout_s)
    return classes


def _environment(settings: LoadSettings, shape: bool) -> Environment:
    classes = _user_classes(settings)
    shape_class = None
    if settings.profile and shape:
        PeakShape.profile = PeakProfile.from_dict(settings.profile)
        shape_class = PeakShape()
    env = Environment(
        user_classes=list[type[User]](classes),
        host=settings.endpoint,
        stop_timeout=5,
        shape_class=shape_class,
        parsed_options=_headless_options(),
    )
    return env


def _headless_options() -> argparse.Namespace:
    """Locust's default options, headless (a shape's end then quits the runner)."""
    parser = get_empty_argument_parser()
    setup_parser_arguments(parser)
    return parser.parse_args(["--headless"])


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stop_on_signals(runner: Runner) -> None:
    def stop(*_: Any) -> None:
        _Shared.stopping = True
        runner.quit()

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)


def _watchdog(runner: Runner, settings: LoadSettings, parent: int | None) -> None:
    """Stop at the hard bounds: duration, orders placed, the parent gone."""
    deadline = time.time() + settings.duration_s
    while not _Shared.stopping:
        if (
            time.time() > deadline
            or (parent is not None and os.getppid() != parent)
            or _Shared.orders_placed >= settings.max_orders > 0
        ):
            _Shared.stopping = True
            runner.quit()
            return
        gevent.sleep(0.5)


def _write_cost(run_dir: Path, requests: int, cpu_s: float, dropped: int, workers: int) -> None:
    (run_dir / GENERATOR_FILE).write_text(
        json.dumps(
            {
                "requests": requests,
                "cpu_s": round(cpu_s, 3),
                "cpu_us_per_request": round(1e6 * cpu_s / requests, 1) if requests else None,
                "dropped": dropped,
                "workers": workers,
            }
        )
    )


def _started(run_dir: Path, settings: LoadSettings) -> None:
    """The run starts now: say when, with the profile it follows (for the drill's
    actions, which time faults to the profile)."""
    _Shared.started = time.time()
    (run_dir / PROFILE_FILE).write_text(
        json.dumps(
            {
                "started": _Shared.started,
                "profile": settings.profile,
                "hot_products": list(settings.hot_products) or _Shared.hot,
            }
        )
    )


def _drive(env: Environment, runner: Runner, settings: LoadSettings) -> None:
    """Run the load to its end: the shape's, or the steady users' until a bound."""
    if env.shape_class is not None:
        runner.start_shape()
    else:
        users = len(env.user_classes) * settings.users_per_kind
        # Ramp up over ~2 s rather than all at once: a burst at start is not the steady state.
        runner.start(users, spawn_rate=max(users / 2.0, 1.0))
    gevent.spawn(_watchdog, runner, settings, os.getppid())
    if runner.greenlet is not None:
        runner.greenlet.join()


def run(settings: LoadSettings, run_dir: Path) -> int:
    """Send load from this process until told to stop or a bound is reached."""
    products = _catalogue(settings.endpoint, time.time() + settings.startup_timeout_s)
    _Shared.configure(settings, products, run_dir)
    env = _environment(settings, shape=True)
    runner = env.create_local_runner()
    _stop_on_signals(runner)
    cpu0 = _cpu_s()
    _started(run_dir, settings)
    _drive(env, runner, settings)
    _Shared.close()
    _write_cost(run_dir, _Shared.sent, _cpu_s() - cpu0, _Shared.dropped, 0)
    return 0


def run_master(
    settings: LoadSettings, run_dir: Path, bind: str, local_workers: int, remote_workers: int
) -> int:
    """A Locust master: start ``local_workers`` worker processes, wait for them and
    ``remote_workers`` more (``peakready load worker``), run, and collect the shards."""
    host, _, port = bind.rpartition(":")
    products = _catalogue(settings.endpoint, time.time() + settings.startup_timeout_s)
    env = _environment(settings, shape=True)
    # Custom options reach every worker with each spawn message (Locust copies them).
    options = env.parsed_options
    assert options is not None
    options.peakready_settings = json.dumps(settings.as_dict())
    options.peakready_products = json.dumps(products)
    runner = env.create_master_runner(master_bind_host=host, master_bind_port=int(port))
    assert isinstance(runner, MasterRunner)
    _stop_on_signals(runner)
    shards: dict[str, dict[str, RecordWriter | LedgerWriter]] = {}
    cost = {"requests": 0, "cpu_s": 0.0, "dropped": 0}

    def receive_shard(environment: Environment, msg: Any, **_: Any) -> None:
        worker = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(msg.node_id))
        files = shards.get(worker)
        if files is None:
            folder = run_dir / SHARDS_DIR / worker
            folder.mkdir(parents=True, exist_ok=True)
            files = shards[worker] = {
                REQUESTS_FILE: RecordWriter(folder / REQUESTS_FILE),
                LEDGER_FILE: LedgerWriter(folder / LEDGER_FILE),
            }
        for name, row in msg.data.get("rows", []):
            writer = files.get(name)
            if isinstance(writer, RecordWriter):
                writer.write(RequestRecord(**row))
            elif isinstance(writer, LedgerWriter):
                writer.append(LedgerEntry(**row))
        for key in cost:
            cost[key] += msg.data.get("cost", {}).get(key, 0)

    runner.register_message("peakready_shard", receive_shard)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "peakready.load",
                "worker",
                "--master",
                f"{host}:{port}",
                "--run-dir",
                str(run_dir / WORKERS_DIR / str(i)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=(run_dir / f"worker-{i}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        for i in range(local_workers)
    ]
    expected = local_workers + remote_workers
    deadline = time.time() + 60
    while runner.worker_count < expected and time.time() < deadline and not _Shared.stopping:
        gevent.sleep(0.2)
    if runner.worker_count < expected:
        log.error("only %d of %d workers joined within 60 s", runner.worker_count, expected)
        runner.quit()
        _stop_children(children)
        return 3
    _Shared.hot = list(settings.hot_products) or products[:1]
    _started(run_dir, settings)
    _drive(env, runner, settings)
    _stop_children(children)
    for files in shards.values():
        for writer in files.values():
            writer.close()
    _write_cost(run_dir, int(cost["requests"]), cost["cpu_s"], int(cost["dropped"]), expected)
    return 0


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.terminate()
            child.wait(5)


def run_worker(master: str, run_dir: Path) -> int:
    """A Locust worker: take users from ``master``, keep a shard of requests and ledger
    in ``run_dir``, and stream it to the master every second and at the end."""
    host, _, port = master.rpartition(":")
    env = Environment(
        user_classes=[PeakUser, OrderUser, ReadUser, SearchUser],
        stop_timeout=5,
        parsed_options=_headless_options(),
    )
    runner = env.create_worker_runner(master_host=host, master_port=int(port))
    assert isinstance(runner, WorkerRunner)
    _stop_on_signals(runner)
    _Shared.outbox = []
    cpu0 = _cpu_s()

    def ship(final: bool = False) -> None:
        rows, _Shared.outbox = _Shared.outbox or [], []
        data: dict[str, Any] = {"rows": rows}
        if final:
            data["cost"] = {
                "requests": _Shared.sent,
                "cpu_s": _cpu_s() - cpu0,
                "dropped": _Shared.dropped,
            }
        if rows or final:
            runner.send_message("peakready_shard", data)

    @env.events.test_start.add_listener
    def start(environment: Environment, **_: Any) -> None:
        options = vars(environment.parsed_options or argparse.Namespace())
        settings = LoadSettings(**json.loads(options["peakready_settings"]))
        _Shared.configure(settings, json.loads(options["peakready_products"]), run_dir)
        _user_classes(settings)
        _Shared.started = time.time()
        gevent.spawn(_watchdog, runner, settings, None)

        def shipping() -> None:
            while not _Shared.stopping:
                gevent.sleep(SHIP_EVERY_S)
                ship()

        gevent.spawn(shipping)

    @env.events.test_stop.add_listener
    def stop(environment: Environment, **_: Any) -> None:
        _Shared.stopping = True
        ship(final=True)
        _Shared.close()

    def give_up() -> None:
        gevent.sleep(WORKER_JOIN_S)
        if not _Shared.started:
            log.error("no run started by %s within %.0f s", master, WORKER_JOIN_S)
            runner.quit()

    gevent.spawn(give_up)
    runner.greenlet.join()
    return 0


def main(argv: list[str]) -> int:
    """``python -m peakready.load worker --master HOST:PORT --run-dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m peakready.load worker")
    parser.add_argument("--master", required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    return run_worker(args.master, args.run_dir)
