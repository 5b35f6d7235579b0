"""Capacity plan and static stability, per tier, at the forecast peak and in each peak window.

Static stability as AWS Well-Architected defines it (REL11-BP05): with any one AZ lost,
the capacity *already running* in the remaining AZs still carries the load, without
launching anything during the event. Instances are spread evenly, so the worst AZ to
lose holds ``ceil(N / azs)`` of them. A tier passes a scenario when its capacity in place
covers the need (load plus headroom) both with every AZ and after losing the worst one.

:func:`assess` is the pure arithmetic; :func:`run` prints it for ``peakready plan``;
the Pulumi program calls :func:`assess` too and refuses an unstable protected stack.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from peakready.topology import REPO_ROOT, DatabaseDeployment, Topology, ceil_div

#: Used only when neither the stack nor `make bench` gives requests/s per instance.
DEFAULT_REQUESTS_PER_INSTANCE = 100.0
BENCH_KEY = "storefront.requests_per_instance"


@dataclass(frozen=True)
class TierCheck:
    """One tier in one scenario: load, need, capacity in place, capacity after an AZ loss."""

    tier: str
    scenario: str
    unit: str
    load: float
    needed: float
    capacity: float
    after_az_loss: float
    basis: str = ""

    @property
    def covers_peak(self) -> bool:
        return self.capacity + 1e-9 >= self.needed

    @property
    def statically_stable(self) -> bool:
        return self.after_az_loss + 1e-9 >= self.needed

    @property
    def ok(self) -> bool:
        return self.covers_peak and self.statically_stable

    @property
    def shortfall(self) -> float:
        """How much capacity is missing for the worse of the two conditions (0 when ok)."""
        return max(0.0, self.needed - self.capacity, self.needed - self.after_az_loss)

    def verdict(self) -> str:
        """One line naming the tier, the scenario and the shortfall."""
        if self.ok:
            return f"{self.tier}: {self.scenario}: ok"
        what = "after losing one AZ" if self.covers_peak else "with every AZ up"
        have = self.after_az_loss if self.covers_peak else self.capacity
        return (
            f"{self.tier}: {self.scenario}: short by {_fmt(self.shortfall)} {self.unit} {what} "
            f"({_fmt(have)} in place, {_fmt(self.needed)} needed)"
        )


@dataclass(frozen=True)
class CapacityPlan:
    stack: str
    az_count: int
    headroom: float
    requests_per_instance: float
    requests_per_instance_source: str
    checks: list[TierCheck]
    notes: list[str] = field(default_factory=list)

    @property
    def stable(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[TierCheck]:
        return [check for check in self.checks if not check.ok]


def measured_requests_per_instance(bench_file: Path | None = None) -> tuple[float, Path] | None:
    """Requests/s one lab instance served in ``make bench`` (``bench/results.json``;
    ``PEAKREADY_BENCH_RESULTS`` overrides the path), and the file; None when not measured."""
    path = bench_file or Path(
        os.environ.get("PEAKREADY_BENCH_RESULTS", REPO_ROOT / "bench" / "results.json")
    )
    try:
        value = json.loads(path.read_text())
        for part in BENCH_KEY.split("."):
            value = value[part]
        figure = float(value)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (figure, path) if figure > 0 and math.isfinite(figure) else None


def requests_per_instance(topology: Topology, bench_file: Path | None = None) -> tuple[float, str]:
    """Requests/s one app instance serves, and where the figure comes from."""
    if topology.app.requests_per_instance is not None:
        return topology.app.requests_per_instance, "stack setting app.requests_per_instance"
    measured = measured_requests_per_instance(bench_file)
    if measured is not None:
        return measured[0], f"measured ({measured[1].name}: {BENCH_KEY})"
    return DEFAULT_REQUESTS_PER_INSTANCE, "DEFAULT, not measured: run `make bench`"


def spread_loss(nodes: int, zones: int) -> int:
    """Nodes lost with the worst AZ when ``nodes`` are spread evenly over ``zones``."""
    return math.ceil(nodes / zones) if nodes and zones else nodes


def assess(topology: Topology, rpi: float, rpi_source: str = "given") -> CapacityPlan:
    """The capacity plan of ``topology`` with ``rpi`` requests/s per app instance."""
    forecast = topology.forecast
    azs = topology.az_count
    grow = 1 + forecast.headroom
    scenarios: list[tuple[str, float, float, int | None]] = [
        ("forecast peak", forecast.requests_per_s, forecast.orders_per_s, None)
    ]
    for window in topology.peak_windows:
        scenarios.append(
            (
                f"window {window.name}",
                window.requests_per_s,
                window.orders_per_s or forecast.orders_per_s,
                window.app_min_capacity,
            )
        )

    checks: list[TierCheck] = []
    notes: list[str] = []
    app = topology.app
    per_target_min = app.target_requests_per_target
    for scenario, rps, orders, scheduled in scenarios:
        if scheduled is not None:
            instances, basis = scheduled, "scheduled minimum (pre-warm)"
        else:
            # Target tracking holds rps*60/target instances, between min and max size.
            tracked = ceil_div(rps * 60, per_target_min)
            instances = min(app.max_size, max(app.min_size, app.desired_size or 0, tracked))
            basis = "target tracking at this load" if tracked > app.min_size else "min_size"
        checks.append(
            TierCheck(
                tier="app",
                scenario=scenario,
                unit="instances",
                load=rps,
                needed=ceil_div(rps * grow, rpi),
                capacity=instances,
                after_az_loss=instances - spread_loss(instances, azs),
                basis=basis,
            )
        )
        checks.extend(_data_tiers(topology, scenario, rps, orders, grow))

    # The largest per-target load at which the tracked fleet still survives an AZ loss.
    stable_target = rpi * 60 * (azs - 1) / azs / grow
    if per_target_min > stable_target:
        notes.append(
            f"app.target_requests_per_target {per_target_min}/min lets target tracking run a "
            f"fleet that an AZ loss overloads; at most {stable_target:,.0f}/min keeps it "
            "statically stable"
        )
    elif per_target_min < stable_target / 4:
        notes.append(
            f"app.target_requests_per_target {per_target_min}/min is far below what one "
            f"instance serves ({_fmt(rpi * 60)}/min): the group scales out early, to "
            f"max_size {app.max_size} at {_fmt(app.max_size * per_target_min / 60)} requests/s; "
            f"about {stable_target:,.0f}/min keeps it statically stable"
        )
    return CapacityPlan(
        stack=topology.stack,
        az_count=azs,
        headroom=forecast.headroom,
        requests_per_instance=rpi,
        requests_per_instance_source=rpi_source,
        checks=checks,
        notes=notes,
    )


def _data_tiers(
    topology: Topology, scenario: str, rps: float, orders: float, grow: float
) -> list[TierCheck]:
    db, cache, search = topology.database, topology.cache, topology.search
    azs = topology.az_count
    # A Multi-AZ instance fails over to its standby, a Multi-AZ cluster to a reader: the
    # writer's capacity survives an AZ loss; the readers lose those in the worst AZ.
    if db.deployment is DatabaseDeployment.MULTI_AZ_CLUSTER:
        readers, lost_readers, reader_basis = 2, 1, "2 readable standbys"
    elif db.replicas:
        readers = db.replicas
        # Readers connect with prefer-standby: with every replica gone, the primary serves.
        lost_readers = min(spread_loss(db.replicas, max(1, azs - 1)), db.replicas - 1)
        reader_basis = f"{db.replicas} replicas over {max(1, azs - 1)} AZs, primary as fallback"
    else:
        readers, lost_readers, reader_basis = 1, 0, "primary (Multi-AZ standby takes over)"
    cache_nodes = 1 + cache.replicas
    search_zones = min(3, azs)
    reads = rps * topology.forecast.db_read_share
    queries = rps * topology.forecast.search_share
    return [
        TierCheck(
            tier="database writes",
            scenario=scenario,
            unit="orders/s",
            load=orders,
            needed=orders * grow,
            capacity=db.primary_orders_per_s,
            after_az_loss=db.primary_orders_per_s,
            basis=f"one writer, {db.deployment.value}",
        ),
        TierCheck(
            tier="database reads",
            scenario=scenario,
            unit="reads/s",
            load=reads,
            needed=reads * grow,
            capacity=readers * db.replica_reads_per_s,
            after_az_loss=(readers - lost_readers) * db.replica_reads_per_s,
            basis=reader_basis,
        ),
        TierCheck(
            tier="cache",
            scenario=scenario,
            unit="ops/s",
            load=rps,
            needed=rps * grow,
            capacity=cache_nodes * cache.node_ops_per_s,
            after_az_loss=(cache_nodes - spread_loss(cache_nodes, azs)) * cache.node_ops_per_s,
            basis=f"{cache_nodes} nodes over {min(cache_nodes, azs)} AZs",
        ),
        TierCheck(
            tier="search",
            scenario=scenario,
            unit="queries/s",
            load=queries,
            needed=queries * grow,
            capacity=search.instance_count * search.node_queries_per_s,
            after_az_loss=(search.instance_count - spread_loss(search.instance_count, search_zones))
            * search.node_queries_per_s,
            basis=f"{search.instance_count} nodes over {search_zones} AZs",
        ),
    ]


def plan_for(topology: Topology) -> CapacityPlan:
    """:func:`assess` with the requests/s per instance resolved as ``peakready plan`` does."""
    rpi, source = requests_per_instance(topology)
    return assess(topology, rpi, source)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value - round(value)) < 1e-9 or value >= 100 else f"{value:,.1f}"


def run(stack: str) -> int:
    """``peakready plan --stack S``: print the table; 1 when a tier is not statically stable."""
    # Imported here: the table only when a plan is printed.
    from rich.table import Table

    topology = Topology.load(stack)
    plan = plan_for(topology)
    console = Console(width=max(Console().width, 150))
    table = Table(
        title=f"capacity plan — stack {plan.stack}, {plan.az_count} AZs, "
        f"headroom {plan.headroom:.0%}",
        title_justify="left",
    )
    columns = (
        "tier",
        "scenario",
        "load/s",
        "needed",
        "in place",
        "after AZ loss",
        "verdict",
        "basis",
    )
    for column in columns:
        left = column in ("tier", "scenario", "basis")
        table.add_column(column, justify="left" if left else "right")
    for check in plan.checks:
        verdict = "[green]ok[/]" if check.ok else f"[red]short {_fmt(check.shortfall)}[/]"
        table.add_row(
            check.tier,
            check.scenario,
            _fmt(check.load),
            f"{_fmt(check.needed)} {check.unit}",
            _fmt(check.capacity),
            _fmt(check.after_az_loss),
            verdict,
            check.basis,
        )
    console.print(table)
    console.print(
        "needed = load x (1 + headroom); after AZ loss = what still runs when the worst AZ "
        "(ceil(N / AZs) of N spread nodes) is gone, with no scaling during the event",
        highlight=False,
    )
    console.print(
        f"app instance serves {_fmt(plan.requests_per_instance)} requests/s "
        f"({plan.requests_per_instance_source})",
        highlight=False,
    )
    for note in plan.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if plan.stable:
        console.print("[green]statically stable[/]: every tier survives the loss of any one AZ")
        return 0
    err = Console(stderr=True)
    for check in plan.failures:
        err.print(
            f"peakready: plan: {check.verdict()}", markup=False, highlight=False, soft_wrap=True
        )
    return 1
