"""``bench/results.json`` (format 1) and the Markdown table ``make bench`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from peakready.bench.failover import RunFigures
from peakready.bench.peak import markdown as peak_tables
from peakready.bench.stats import summarise

FORMAT = 1
#: The published AWS figures of DESIGN §8, for the comparison column.
AWS_FIGURES = {
    "app-instance-loss": "ALB needs ≥ 10 s to mark a target unhealthy",
    "az-power-loss": "RDS Multi-AZ instance 60-120 s, Multi-AZ cluster < 35 s",
    "db-primary-loss": "RDS Multi-AZ instance 60-120 s, Multi-AZ cluster < 35 s",
    "cache-primary-loss": "ElastiCache ≈ 30 s",
    "search-node-loss": "—",
}
#: Wall-time targets of DESIGN §8 (seconds), where it sets one.
WALL_TARGETS = {"drill_suite": 600.0, "preview_prod": 5.0}
TOP_KEYS = ("format", "stack", "started", "finished", "runs", "host", "failover", "storefront")
SCENARIO_KEYS = (
    "runs",
    "rto_s",
    "rto_objective_s",
    "passed_runs",
    "lost_orders",
    "duplicate_orders",
    "oversold_units",
    "failed_requests",
)
SPREAD_KEYS = ("n", "min", "median", "p95", "max", "spread")


def scenario_entry(runs: Sequence[RunFigures], objective_s: float) -> dict[str, Any]:
    """One failover scenario over its runs: the RTO's spread and the summed counts."""
    rtos = [r.rto_s for r in runs if r.rto_s is not None]
    spread = summarise(rtos)
    cache = summarise([r.cache_failover_s for r in runs if r.cache_failover_s is not None])
    extra = {"cache_failover_s": cache.as_dict()} if cache else {}
    slowed = summarise(
        [
            r.order_p99_ms / r.baseline_order_p99_ms
            for r in runs
            if r.order_p99_ms and r.baseline_order_p99_ms
        ]
    )
    if slowed:  # order p99 while the fault lasted ÷ before it
        extra["order_p99_ratio"] = slowed.as_dict()
    return {
        "runs": [r.as_dict() for r in runs],
        "rto_s": spread.as_dict() if spread else None,
        "rto_objective_s": objective_s,
        "passed_runs": sum(r.status == "passed" for r in runs),
        "lost_orders": sum(r.lost_orders for r in runs),
        "duplicate_orders": sum(r.duplicate_orders for r in runs),
        "oversold_units": sum(r.oversold_units for r in runs),
        "failed_requests": sum(r.failed_requests for r in runs),
        **extra,
    }


def validate(results: dict[str, Any]) -> list[str]:
    """Where ``results`` departs from format 1; [] when it conforms."""
    problems = [f"missing key {k}" for k in TOP_KEYS if k not in results]
    if results.get("format") != FORMAT:
        problems.append(f"format {results.get('format')!r}: expected {FORMAT}")
    for name, entry in (results.get("failover") or {}).items():
        problems += [f"failover.{name}: missing {k}" for k in SCENARIO_KEYS if k not in entry]
        rto = entry.get("rto_s")
        if rto is not None:
            problems += [f"failover.{name}.rto_s: missing {k}" for k in SPREAD_KEYS if k not in rto]
    storefront = results.get("storefront") or {}
    rpi = storefront.get("requests_per_instance")
    if "storefront" in results and storefront and not (rpi is None or isinstance(rpi, int | float)):
        problems.append("storefront.requests_per_instance: expected a number or null")
    for name, timed in (results.get("wall_s") or {}).items():
        if not isinstance(timed.get("wall_s"), int | float):
            problems.append(f"wall_s.{name}.wall_s: expected a number")
    return problems


def markdown(results: dict[str, Any]) -> str:
    """The Markdown tables of ``results`` (failover, throughput, wall times)."""
    out: list[str] = [
        f"## peakready bench — stack {results.get('stack')}, {results.get('started')}"
    ]
    failover = results.get("failover") or {}
    if failover:
        out += [
            "",
            "| scenario | runs | passed | RTO min | median | p95 | p95/median "
            "| objective | lost | dup | oversold | failed req | AWS (DESIGN §8) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | --- |",
        ]
        for name, e in failover.items():
            r = e.get("rto_s") or {}
            out.append(
                f"| {name} | {len(e['runs'])} | {e['passed_runs']} | {_s(r.get('min'))} "
                f"| {_s(r.get('median'))} | {_s(r.get('p95'))} | {_x(r.get('spread'))} "
                f"| {_s(e.get('rto_objective_s'))} | {e['lost_orders']} | {e['duplicate_orders']} "
                f"| {e['oversold_units']} | {e['failed_requests']} | {AWS_FIGURES.get(name, '—')} |"
            )
            ratio = e.get("order_p99_ratio")
            if name == "backoffice-outage" and ratio:  # the order path never waits for it
                out.append(
                    f"| {name}: order p99 during the outage ÷ before it | {ratio['n']} | "
                    f"| {_x(ratio['min'])} | **{_x(ratio['median'])}** | {_x(ratio['p95'])} "
                    f"| {_x(ratio['spread'])} | ≤ 1.10 | | | | | — |"
                )
            c = e.get("cache_failover_s")
            if c:  # the Sentinel failover itself (the order path never waits for it)
                out.append(
                    f"| {name}: Sentinel failover | {c['n']} | | {_s(c['min'])} "
                    f"| {_s(c['median'])} | {_s(c['p95'])} | {_x(c['spread'])} "
                    f"| {_s(e.get('rto_objective_s'))} | | | | | {AWS_FIGURES.get(name, '—')} |"
                )
    sf = results.get("storefront") or {}
    if sf:
        http = sf.get("orders_per_s_haproxy") or {}
        db = sf.get("orders_per_s_direct_db") or {}
        inst = sf.get("instance_requests") or {}
        search = sf.get("orders_search") or {}
        out += [
            "",
            f"| storefront (p99 ≤ {_n(sf.get('objective_p99_ms'))} ms) | median /s | p99 ms "
            "| p95/median | clients |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| orders through HAProxy | {_n(http.get('rate'))} | {_n(http.get('p99_ms'))} "
            f"| {_x(_spread(http))} | {_n(search.get('concurrency'))} |",
            f"| same order transaction straight to PostgreSQL | {_n(db.get('rate'))} "
            f"| {_n(db.get('p99_ms'))} | {_x(_spread(db))} "
            f"| {_n((sf.get('direct_db_search') or {}).get('concurrency'))} |",
            f"| **ratio** (target ≥ 0.5) | **{_x(sf.get('ratio'))}** | | | |",
            f"| requests per instance ({sf.get('instance', '?')}, drill mix) "
            f"| {_n(sf.get('requests_per_instance'))} | {_n(inst.get('p99_ms'))} "
            f"| {_x(_spread(inst))} | {_n((sf.get('instance_search') or {}).get('concurrency'))} |",
        ]
        for path, used in (sf.get("cpu_ms_per_op") or {}).items():
            top = sorted(used.items(), key=lambda kv: -kv[1])
            parts = ", ".join(f"{kind} {ms:.2f}" for kind, ms in top if ms >= 0.01)
            out.append(f"\nCPU ms per operation ({path}): {parts}")
    out += peak_tables(results.get("peak") or {})
    out += pipeline_table(results.get("pipeline") or {})
    out += monitoring_table(results.get("monitoring") or {})
    wall = results.get("wall_s") or {}
    if wall:
        out += ["", "| wall time | seconds | exit | target |", "| --- | ---: | ---: | ---: |"]
        for name, t in wall.items():
            target = WALL_TARGETS.get(name)
            out.append(
                f"| `{t.get('command')}` | {_s(t.get('wall_s'))} | {t.get('exit_code')} "
                f"| {'≤ ' + _s(target) if target else '—'} |"
            )
    if results.get("notes"):
        out += [""] + [f"- {note}" for note in results["notes"]]
    return "\n".join(out) + "\n"


def pipeline_table(p: dict[str, Any]) -> list[str]:
    """The order pipeline's cost and drain (``peakready.bench.pipeline``)."""
    if not p:
        return []
    drain = p.get("drain_orders_per_s") or {}
    return [
        "",
        "| order pipeline | figure | target |",
        "| --- | ---: | ---: |",
        f"| queue tier PSS (MiB) / whole lab | {_n(p.get('tier_pss_mib'))} / "
        f"{_n(p.get('lab_pss_mib'))} | lab ≤ 1536 |",
        f"| queue tier idle CPU (% of a core) | {_n(p.get('tier_idle_cpu_percent'))} | — |",
        f"| drain, orders/s: min / median / max ({_n(drain.get('n'))} runs) "
        f"| {_n(drain.get('min'))} / {_n(drain.get('median'))} / {_n(drain.get('max'))} | — |",
        f"| drain ÷ the lab's forecast peak order rate ({_n(p.get('lab_peak_orders_per_s'))}/s) "
        f"| **{_x(p.get('drain_ratio'))}** | ≥ {_x(p.get('drain_ratio_objective'))} |",
        "| missing / applied twice, every run | "
        f"{sum(r['missing_deliveries'] for r in p.get('runs', []))} / "
        f"{sum(r['applied_twice'] for r in p.get('runs', []))} | 0 / 0 |",
    ]


def monitoring_table(m: dict[str, Any]) -> list[str]:
    """The monitoring tier's cost (``peakready.bench.tiers``, phase ``monitoring``)."""
    if not m:
        return []
    return [
        "",
        "| monitoring tier (Prometheus, Alertmanager, exporters, probe) | figure | target |",
        "| --- | ---: | ---: |",
        f"| PSS (MiB) / whole lab | {_n(m.get('tier_pss_mib'))} / {_n(m.get('lab_pss_mib'))} | — |",
        f"| PSS added to the rest of the lab | **{_1(m.get('tier_adds_pss_percent'))} %** "
        "| ≤ 10 % |",
        f"| CPU, steady (% of one core) | {_1(m.get('tier_idle_cpu_percent'))} | — |",
    ]


# private


def _spread(figure: dict[str, Any]) -> float | None:
    spread = figure.get("spread") or {}
    value = spread.get("spread")
    return float(value) if isinstance(value, int | float) else None


def _s(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def _n(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, int) else f"{float(value):.0f}"


def _1(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def _x(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}"
