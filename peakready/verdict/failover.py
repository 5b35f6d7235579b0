"""The failover verdict: a scenario's figures from its records, and the rules on them.

One engine for every target: the drill, the bench and the chaos probes judge the same
:class:`Figures` with :func:`judge` (DESIGN §6, §8 and the stack's policy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from peakready.load.ledger import LedgerCheck
from peakready.load.records import (
    WRITE_KINDS,
    RequestRecord,
    failed,
    first_fault_at,
    percentile,
    recovery_time,
)
from peakready.topology import Objective

#: DESIGN §8: what the lab must achieve whatever the stack's policy says (seconds).
LAB_RTO_TARGETS: dict[str, float] = {
    "db-primary-loss": 25.0,
    "az-power-loss": 30.0,
    "cache-primary-loss": 5.0,
    "az-loss-at-peak": 30.0,
}

#: The path whose first success ends the outage, per scenario (DESIGN §7: rto_s).
AFFECTED_PATH: dict[str, str] = {
    "app-instance-loss": "any",
    "az-power-loss": "writes",
    "db-primary-loss": "writes",
    "cache-primary-loss": "reads",
    "search-node-loss": "search",
    "degraded-dependencies": "writes",
    # The order path must not notice the pipeline's faults at all.
    "backoffice-outage": "writes",
    "broker-node-loss": "writes",
}
#: Scenarios whose fault must leave every order attempt unaffected.
ORDER_PATH_UNAFFECTED = (
    "cache-primary-loss",
    "search-node-loss",
    "degraded-dependencies",
    "backoffice-outage",
    "broker-node-loss",
)


#: Degraded reads (cache and search down) must still answer within this (p95, ms).
DEGRADED_READ_P95_MS = 1000.0


@dataclass
class Figures:
    """What one scenario measured (the numbers of summary.json, plus a few more)."""

    rto_s: float | None = None
    requests: int = 0
    failed_requests: int = 0
    failed_orders: int = 0
    baseline_requests: int = 0
    baseline_failed_requests: int = 0
    acked_orders: int = 0
    lost_orders: int = 0
    duplicate_orders: int = 0
    oversold_units: int = 0
    mismatched_orders: int = 0
    read_p95_ms: float = 0.0
    fault_at: float | None = None
    path: str = "writes"
    stale_primary_ok: bool | None = None
    cache_failover_s: float | None = None
    order_p99_ms: float = 0.0  # successful orders while the fault lasts
    fault_orders: int = 0  # how many: under 100, the p99 is their slowest
    baseline_order_p99_ms: float = 0.0  # successful orders before the fault
    broker_election_s: float | None = None
    # The order pipeline (None: the stack has none): DESIGN §7.
    delivered_orders: int | None = None
    missing_deliveries: int | None = None
    applied_twice: int | None = None
    outbox_pending: int | None = None
    unexplained_dead_letters: int | None = None
    drain_s: float | None = None
    ledger: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    scenario: str,
    records: Sequence[RequestRecord],
    events: Sequence[dict[str, Any]],
    check: LedgerCheck | None,
) -> Figures:
    """Figures from a run's records, fault events and ledger check (pure).

    Requests and failures count from the first fault to the end of the load: the
    window the fault can affect. What failed before it (the baseline, checked by the
    steady-state hypothesis) is reported apart as ``baseline_failed_requests``. The
    order latency counts while the fault lasts: from it to the start of the restore,
    the lab's own repair (rebooting a broker node takes one of the lab's 2 cores for
    about 8 s, which a broker's own hosts would not take from the shop's).
    """
    path = AFFECTED_PATH.get(scenario, "writes")
    fault_at = first_fault_at(events)
    window = [r for r in records if fault_at is None or r.t0 >= fault_at]
    restore_at = min(
        (float(e["started"]) for e in events if e.get("event") == "restore" and "started" in e),
        default=math.inf,
    )
    during = [r for r in window if r.t0 < restore_at]
    reads = [r.latency * 1000 for r in window if r.kind in ("product", "search")]
    stale = [e for e in events if e.get("event") == "stale_primary"]
    figures = Figures(
        rto_s=recovery_time(records, fault_at, path) if fault_at is not None else None,
        requests=len(window),
        failed_requests=failed(window),
        failed_orders=failed(window, WRITE_KINDS),
        baseline_requests=len(records) - len(window),
        baseline_failed_requests=failed(records) - failed(window),
        read_p95_ms=round(percentile(reads, 0.95), 1),
        fault_at=fault_at,
        path=path,
        stale_primary_ok=bool(stale[-1].get("ok")) if stale else None,
        cache_failover_s=next(
            (float(e["failover_s"]) for e in events if e.get("event") == "cache_failover"), None
        ),
        broker_election_s=next(
            (float(e["election_s"]) for e in events if e.get("event") == "queue_leader_elected"),
            None,
        ),
        order_p99_ms=_order_p99(during),
        fault_orders=sum(1 for r in during if r.kind in WRITE_KINDS and r.ok),
        baseline_order_p99_ms=_order_p99(
            r for r in records if fault_at is not None and r.t0 < fault_at
        ),
    )
    if check is not None:
        figures.acked_orders = check.acked_orders
        figures.lost_orders = check.lost_orders
        figures.duplicate_orders = check.duplicate_orders
        figures.oversold_units = check.oversold_units
        figures.mismatched_orders = check.mismatched_orders
        figures.ledger = check.as_dict()
        if (delivery := check.delivery) is not None:
            figures.delivered_orders = delivery.delivered_orders
            figures.missing_deliveries = delivery.missing_deliveries
            figures.applied_twice = delivery.applied_twice
            figures.outbox_pending = delivery.outbox_pending
            figures.unexplained_dead_letters = delivery.unexplained_dead_letters
            figures.drain_s = delivery.drain_s
    return figures


def _order_p99(records: Iterable[RequestRecord]) -> float:
    """p99 (ms) of the successful orders among ``records``; 0.0 when there are none."""
    return round(
        percentile([r.latency * 1000 for r in records if r.kind in WRITE_KINDS and r.ok], 0.99),
        1,
    )


def ledger_reasons(figures: Figures) -> list[str]:
    """What the ledger check found wrong: lost, duplicate, oversold, mismatched orders."""
    reasons = []
    if figures.lost_orders:
        reasons.append(f"{figures.lost_orders} acknowledged orders lost")
    if figures.duplicate_orders:
        reasons.append(f"{figures.duplicate_orders} duplicate orders")
    if figures.oversold_units:
        reasons.append(f"{figures.oversold_units} units oversold")
    if figures.mismatched_orders:
        reasons.append(f"{figures.mismatched_orders} orders differ from what was acknowledged")
    if figures.missing_deliveries:
        reasons.append(
            f"{figures.missing_deliveries} acknowledged orders never reached the back office"
        )
    if figures.applied_twice:
        reasons.append(f"{figures.applied_twice} orders applied twice in the back office")
    if figures.outbox_pending:
        reasons.append(f"{figures.outbox_pending} orders still in the outbox, never published")
    if figures.unexplained_dead_letters:
        reasons.append(f"{figures.unexplained_dead_letters} dead letters without a recorded reason")
    return reasons


def judge(
    scenario: str,
    figures: Figures,
    objective: Objective,
    rto_limit: float | None = None,
    order_p99_limit_ms: float | None = None,
    drain_limit_s: float | None = None,
) -> list[str]:
    """Why the figures break the scenario's rules (DESIGN §6, §8 and the policy); [] = pass.

    The pipeline's scenarios also hold the orders to the stack's p99 objective
    (``order_p99_limit_ms``) and, after a back-office outage, the backlog to its drain
    objective (``drain_limit_s``: the queue's ``max_backlog_age_s``).
    """
    reasons = ledger_reasons(figures) + pipeline_reasons(
        scenario, figures, order_p99_limit_ms, drain_limit_s
    )
    limit = float(objective.rto_s) if rto_limit is None else rto_limit
    if figures.fault_at is None:
        reasons.append("no fault was injected")
    elif figures.rto_s is None:
        reasons.append(f"{figures.path} never recovered after the fault")
    elif figures.rto_s > limit:
        reasons.append(f"RTO {figures.rto_s:.1f} s exceeds the objective {limit:g} s")
    allowed = objective.max_failed_requests
    if scenario == "app-instance-loss" and allowed is None:
        allowed = 0
    if allowed is not None and figures.failed_requests > allowed:
        reasons.append(f"{figures.failed_requests} failed requests (allowed {allowed})")
    if scenario in ORDER_PATH_UNAFFECTED and figures.failed_orders:
        reasons.append(f"order path affected: {figures.failed_orders} failed order attempts")
    if scenario == "degraded-dependencies" and figures.read_p95_ms > DEGRADED_READ_P95_MS:
        reasons.append(
            f"degraded reads slow: p95 {figures.read_p95_ms:.0f} ms > {DEGRADED_READ_P95_MS:.0f} ms"
        )
    if figures.cache_failover_s is not None and figures.cache_failover_s > limit:
        reasons.append(
            f"cache failover took {figures.cache_failover_s:.1f} s, objective {limit:g} s"
        )
    if figures.stale_primary_ok is False:
        reasons.append("the stale primary accepted a write")
    return reasons


def pipeline_reasons(
    scenario: str,
    figures: Figures,
    order_p99_limit_ms: float | None,
    drain_limit_s: float | None,
) -> list[str]:
    """The order pipeline's own rules for its two scenarios (DESIGN §6)."""
    if scenario not in ("backoffice-outage", "broker-node-loss"):
        return []
    reasons = []
    if figures.delivered_orders is None:
        reasons.append(
            "the back office was not checked (no queue tier, or on AWS no "
            "peakready_backoffice_endpoint that reaches it)"
        )
    if order_p99_limit_ms is not None and figures.order_p99_ms > order_p99_limit_ms:
        reasons.append(
            f"order p99 {figures.order_p99_ms:.0f} ms > {order_p99_limit_ms:g} ms over "
            f"{figures.fault_orders} orders: the order path waited for the pipeline"
        )
    if scenario == "backoffice-outage" and figures.delivered_orders is not None:
        if figures.drain_s is None:
            reasons.append("the back office's backlog never drained")
        elif drain_limit_s is not None and figures.drain_s > drain_limit_s:
            reasons.append(
                f"backlog drained {figures.drain_s:.1f} s after the restart, objective "
                f"{drain_limit_s:g} s"
            )
    if scenario == "broker-node-loss" and figures.broker_election_s is None:
        reasons.append("no new leader of the order queue was seen")
    return reasons
