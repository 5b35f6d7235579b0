"""The peak phase of ``make bench``: peak-surge at 2x the lab's capacity, repeated, and
the drill's flash sale and AZ loss at the peak, against DESIGN §8's peak targets."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from peakready.load.records import GENERATOR_FILE
from peakready.topology import Topology

#: DESIGN §8 (lab, 2 cores).
SHED_P99_MS = 50.0
SCALE_OUT_S = 10.0
FLASH_P99_MS = 500.0
SURGE = 2.0


def surge_once(topology: Topology, report_dir: Path) -> dict[str, Any]:
    """One peak-surge at 2x; its figures, the verdict and the generator's cost."""
    from peakready.drill.runner import run_scenario  # lazy: chaoslib

    result, _ = run_scenario("peak-surge", topology, "lab", report_dir, peak={"surge": SURGE})
    peak = result.peak or {}
    timed_out = sum((peak.get("timed_out") or {}).values())
    cost_file = report_dir / "runs" / "peak-surge" / GENERATOR_FILE
    cost = json.loads(cost_file.read_text()) if cost_file.exists() else {}
    return {
        "status": result.status,
        "reasons": result.reasons,
        "order_goodput": peak.get("order_goodput"),
        "order_p99_ms": (peak.get("p99_ms") or {}).get("order"),
        "shed_p99_ms": peak.get("shed_p99_ms"),
        "shed": peak.get("shed"),
        "timed_out": timed_out,
        "scale_out_s": peak.get("scale_out_s"),
        "lost": result.lost_orders,
        "duplicate": result.duplicate_orders,
        "oversold": result.oversold_units,
        "generator_cpu_us_per_request": cost.get("cpu_us_per_request"),
        "generator_requests": cost.get("requests"),
    }


def from_drill(details: Path) -> dict[str, Any]:
    """The drill's own peak scenarios (one run each) from its ``details.json``."""
    try:
        scenarios = json.loads(details.read_text())["scenarios"]
    except (OSError, ValueError, KeyError):
        return {}
    found = {}
    for entry in scenarios:
        peak = entry.get("peak")
        if not peak:
            continue
        found[entry["name"]] = {
            "status": entry.get("status"),
            "reasons": entry.get("reasons"),
            "order_goodput": peak.get("order_goodput"),
            "p99_ms": peak.get("p99_ms"),
            "timed_out": peak.get("timed_out"),
            "sold_units": peak.get("sold_units"),
            "units_on_sale": peak.get("units_on_sale"),
            "goodput_recovered_s": peak.get("goodput_recovered_s"),
            "rto_s": entry.get("rto_s"),
            "instances_after_fault": peak.get("instances_after_fault"),
            "instances_needed": peak.get("instances_needed"),
            "lost": entry.get("lost_orders"),
        }
    return found


def summary(runs: list[dict[str, Any]], order_p99_objective_ms: float) -> dict[str, Any]:
    """Medians and spread over the surge runs, and each target met or not."""

    def values(key: str) -> list[float]:
        return [float(r[key]) for r in runs if r.get(key) is not None]

    def median(key: str) -> float | None:
        found = values(key)
        return round(statistics.median(found), 3) if found else None

    scale = values("scale_out_s")
    checks = {
        "order_goodput >= 0.95": all(v >= 0.95 for v in values("order_goodput")),
        f"order p99 <= {order_p99_objective_ms:g} ms": all(
            v <= order_p99_objective_ms for v in values("order_p99_ms")
        ),
        f"shed p99 <= {SHED_P99_MS:g} ms": all(v <= SHED_P99_MS for v in values("shed_p99_ms")),
        "0 timeouts": all(int(r.get("timed_out") or 0) == 0 for r in runs),
        f"scale-out median <= {SCALE_OUT_S:g} s": bool(scale)
        and statistics.median(scale) <= SCALE_OUT_S,
    }
    return {
        "runs": runs,
        "surge": SURGE,
        "median": {
            key: median(key)
            for key in (
                "order_goodput",
                "order_p99_ms",
                "shed_p99_ms",
                "scale_out_s",
                "generator_cpu_us_per_request",
            )
        },
        "scale_out_s_range": [min(scale), max(scale)] if scale else None,
        "targets": checks,
    }


def markdown(peak: dict[str, Any]) -> list[str]:
    """The peak tables of the bench report."""
    if not peak:
        return []
    out = [
        "",
        f"| peak-surge at {peak['surge']:g}x | goodput | order p99 ms | shed p99 ms "
        "| timeouts | scale-out s | generator µs/request | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for i, run in enumerate(peak["runs"], 1):
        out.append(
            f"| run {i} | {_f(run['order_goodput'], 3)} | {_f(run['order_p99_ms'])} "
            f"| {_f(run['shed_p99_ms'])} | {run['timed_out']} | {_f(run['scale_out_s'], 1)} "
            f"| {_f(run['generator_cpu_us_per_request'])} | {run['status']} |"
        )
    m = peak["median"]
    out.append(
        f"| **median** | {_f(m['order_goodput'], 3)} | {_f(m['order_p99_ms'])} "
        f"| {_f(m['shed_p99_ms'])} | | {_f(m['scale_out_s'], 1)} "
        f"| {_f(m['generator_cpu_us_per_request'])} | |"
    )
    out += ["", "| peak target (DESIGN §8) | met |", "| --- | --- |"]
    out += [f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in peak["targets"].items()]
    for name, run in (peak.get("drill") or {}).items():
        out.append(f"\n{name} (the drill's run): {json.dumps(run, default=str)}")
    return out


def _f(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"
