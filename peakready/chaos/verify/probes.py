"""Verification probes: run them after recovery, with load still flowing."""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared
from peakready.chaos.verify.shared import (
    check_ledger,
    figures_of,
    peak_figures_of,
    peak_reasons,
    scenario_reasons,
)
from peakready.load.records import read_events, recovery_time, run_records
from peakready.verdict.failover import AFFECTED_PATH

__all__ = [
    "ledger_consistent",
    "peak_figures",
    "peak_verdict",
    "recovered_within_objective",
    "scenario_figures",
    "scenario_verdict",
    "wait_for_recovery",
]


def wait_for_recovery(
    path: str | None = None,
    timeout_s: float = 90.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Wait until the load generator sees the affected ``path`` (``writes``, ``reads``,
    ``search``, ``any``; default: the scenario's) succeed after the last fault.
    Returns ``{"path", "rto_s"}``; fails after ``timeout_s`` seconds without recovery."""
    chosen = path or AFFECTED_PATH[shared.scenario_of(configuration)]
    run = shared.run_dir(configuration)
    faults = [e for e in read_events(run) if e.get("type") == "fault"]
    if not faults:
        raise ActivityFailed("wait for recovery: no fault recorded in this run")
    fault_at = float(faults[-1]["at"])
    deadline = time.monotonic() + timeout_s
    while True:
        rto = recovery_time(run_records(run), fault_at, chosen)
        if rto is not None:
            shared.record(configuration, "recovery", "first_success", path=chosen, rto_s=rto)
            return {"path": chosen, "rto_s": rto}
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"{chosen} not recovered {timeout_s:.0f} s after the fault")
        time.sleep(0.2)


def ledger_consistent(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Whether every acknowledged order of the ledger is in the database exactly once,
    as acknowledged, and no product is oversold (checked through ``POST /audit``)."""
    return check_ledger(shared.run_dir(configuration), configuration, secrets).ok


def recovered_within_objective(
    configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether the affected path recovered within the scenario's RTO (the stack's
    resiliency policy, and DESIGN §8 on the lab). ``True`` before any fault."""
    run = shared.run_dir(configuration)
    scenario = shared.scenario_of(configuration)
    faults = [e for e in read_events(run) if e.get("type") == "fault"]
    if not faults:
        return True
    path = AFFECTED_PATH[scenario]
    rto = recovery_time(run_records(run), float(faults[0]["at"]), path)
    return rto is not None and rto <= shared.rto_limit(configuration, scenario)


def scenario_figures(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Everything measured so far: RTO, requests, failures, ledger check."""
    run = shared.run_dir(configuration)
    return figures_of(run, shared.scenario_of(configuration), configuration, secrets).as_dict()


def peak_figures(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """A peak run's figures per class: offered, served, shed, p50/p99, goodput, instances."""
    run = shared.run_dir(configuration)
    scenario = shared.scenario_of(configuration)
    return peak_figures_of(run, scenario, configuration, secrets).as_dict()


def peak_verdict(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Whether a peak run meets its rules: the ledger (no lost, duplicate or oversold
    order), the stack's slo, and the scenario's own (scaled out; exactly the units on
    sale sold; goodput back within the RTO and the plan's static stability)."""
    scenario = shared.scenario_of(configuration)
    run = shared.run_dir(configuration)
    figures = figures_of(run, scenario, configuration, secrets)
    reasons = peak_reasons(
        scenario, figures, peak_figures_of(run, scenario, configuration, secrets), configuration
    )
    if reasons:
        shared.record(configuration, "check", "verdict", reasons=reasons)
    return not reasons


def scenario_verdict(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Whether the scenario's figures meet every rule (DESIGN §6/§8, the stack policy):
    no lost/duplicate/oversold orders, RTO within objective, failed requests within
    bounds. ``True`` before any fault when the ledger is consistent."""
    scenario = shared.scenario_of(configuration)
    run = shared.run_dir(configuration)
    figures = figures_of(run, scenario, configuration, secrets)
    if figures.fault_at is None:
        return figures.lost_orders == figures.duplicate_orders == figures.oversold_units == 0
    reasons = scenario_reasons(scenario, figures, configuration)
    if reasons:
        shared.record(configuration, "check", "verdict", reasons=reasons)
    return not reasons
