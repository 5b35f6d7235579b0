"""The order pipeline's costs and drain rate on the lab (``make bench`` phase ``pipeline``).

- **Cost**: PSS of the queue tier (RabbitMQ nodes, back-office workers and database)
  against the whole lab's, and the CPU it spends idle over ``IDLE_S``.
- **Drain**: the consumers stop, ``ORDERS`` real orders are placed through the
  storefront (so they go through outbox, relay and queue), the consumers start, and the
  time until every one is applied is measured; per run, orders/s after the workers were
  ready, and its ratio to the lab's forecast peak order rate (the lab's capacity times
  the forecast's order share: the rate the peak rehearsals offer). DESIGN §8: at least 5 times.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

import peakready.bench.tiers as tiers
from peakready.bench.stats import summarise
from peakready.chaos.verify.shared import check_deliveries
from peakready.errors import PeakreadyError
from peakready.lab.state import LabState
from peakready.load.ledger import LedgerEntry
from peakready.load.rawhttp import check_loopback
from peakready.load.shape import forecast_mix, lab_capacity_per_s
from peakready.topology import Topology

ORDERS = 1000
CLIENTS = 8
RUNS = 3
IDLE_S = 10.0
TIER = ("rabbitmq", "backoffice")


def measure(topology: Topology, say: Any) -> dict[str, Any]:
    """The pipeline's figures (``results["pipeline"]``); PeakreadyError without a queue."""
    # Imported here: the lab driver only when a lab runs.
    from peakready.targets.lab import LabDriver

    if topology.queue is None:
        raise PeakreadyError(f"stack {topology.stack} has no queue tier", exit_code=1)
    say("pipeline: waiting for the app group and the workers at their lab sizes")
    at_rest = tiers.wait_at_rest(topology)
    driver = LabDriver(topology.stack)  # the lab as it is now
    state = driver.state
    say("pipeline: idle cost of the queue tier")
    cost = {**idle_cost(state), "at_rest": at_rest}
    capacity = lab_capacity_per_s(topology)
    peak_orders = capacity[0] * forecast_mix(topology)["order"] if capacity else None
    runs = []
    for i in range(1, RUNS + 1):
        say(f"pipeline: drain of {ORDERS} orders, run {i}/{RUNS}")
        runs.append(drain_once(driver, state))
    rates = [r["orders_per_s"] for r in runs if r["orders_per_s"]]
    spread = summarise(rates)
    return {
        **cost,
        "runs": runs,
        "drain_orders_per_s": spread.as_dict() if spread else None,
        "lab_peak_orders_per_s": round(peak_orders, 1) if peak_orders else None,
        "drain_ratio": round(spread.median / peak_orders, 1) if spread and peak_orders else None,
        "drain_ratio_objective": topology.queue.drain_ratio,
    }


def idle_cost(state: LabState) -> dict[str, Any]:
    """PSS (MiB) of the tier (with the back office's PostgreSQL) and of the lab, and the
    tier's CPU over ``IDLE_S`` (% of a core)."""
    return tiers.cost(state, TIER, IDLE_S, also=lambda cmdline: "/backoffice/" in cmdline)


def drain_once(driver: Any, state: LabState) -> dict[str, Any]:
    """One drain: ``ORDERS`` orders queued while the consumers are stopped, then applied."""
    endpoint = str(state.outputs["endpoint"])
    backoffice = str(state.outputs["backoffice_endpoint"])
    token = state.secrets()["audit_token"]
    driver.stop_consumers()
    try:
        entries = place_orders(endpoint, ORDERS)
    finally:
        restarted = time.time()
        driver.start_consumers()
    ready = time.time()
    check = check_deliveries(entries, endpoint, backoffice, token, wait_s=120, since=restarted)
    drained = check.drain_s
    after_ready = drained - (ready - restarted) if drained is not None else None
    return {
        "orders": len(entries),
        "drain_s": drained,
        "workers_ready_s": round(ready - restarted, 2),
        "orders_per_s": round(len(entries) / after_ready, 1) if after_ready else None,
        "missing_deliveries": check.missing_deliveries,
        "applied_twice": check.applied_twice,
    }


def place_orders(endpoint: str, count: int) -> list[LedgerEntry]:
    """``count`` orders through the storefront, ``CLIENTS`` at a time (each retried on a
    503 with the same key, at most 5 times); the acknowledged ones."""

    def one(client: httpx.Client, i: int) -> LedgerEntry | None:
        key = f"bench-drain-{uuid.uuid4()}"
        product = 1 + i % 50
        for _ in range(5):
            answer = client.post(
                "/orders",
                json={"product_id": product, "quantity": 1},
                headers={"Idempotency-Key": key},
            )
            if answer.status_code in (200, 201):
                return LedgerEntry(key, int(answer.json()["id"]), product, 1, time.time())
            time.sleep(0.2)
        return None

    check_loopback(endpoint, "the lab's endpoint")  # traffic stays on this machine
    with (
        httpx.Client(base_url=endpoint, timeout=10) as client,
        ThreadPoolExecutor(CLIENTS) as pool,
    ):
        found = list(pool.map(lambda i: one(client, i), range(count)))
    return [e for e in found if e is not None]
