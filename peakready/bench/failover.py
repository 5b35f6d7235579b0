"""Repeated failover runs on one lab: the scenario's own experiment, without the hypothesis.

Each run is ``chaos/<scenario>.yaml`` through chaoslib, exactly as the drill runs it —
the load control (load on, ledger), the fault, waiting for recovery, the restore, the
scenario's own probes, rollbacks always — minus the steady-state hypothesis before and
after (≈ 5 s a run; the restore already waits until the lab is healthy). The figures
and verdict are the drill's own (``peakready.drill.runner.judge_run``: the ledger
checked against the database through the audit endpoint), so a bench run and a drill
run agree on what RTO, lost, duplicate and oversold mean.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from chaoslib.run import Runner
from chaoslib.types import Journal, Strategy

from peakready.chaos import shared
from peakready.drill.runner import SETTINGS, experiment_for, judge_run
from peakready.lab import observe
from peakready.report.summary import ScenarioResult, write_json
from peakready.topology import SCENARIOS as ALL_SCENARIOS
from peakready.topology import Topology

#: The failover scenarios the bench repeats (DESIGN §6 order): every scenario with a
#: fault to recover from. degraded-dependencies has no RTO and backup-restore is no
#: failover; peak-surge and flash-sale inject no fault (the phase ``peak`` repeats the
#: surge, at 2x; the drill suite's run of each is reported with it).
NO_FAILOVER = ("degraded-dependencies", "backup-restore", "peak-surge", "flash-sale")
SCENARIOS = tuple(s for s in ALL_SCENARIOS if s not in NO_FAILOVER)
#: Longest wait for a settled lab before a run.
SETTLE_TIMEOUT_S = 90.0


@dataclass
class RunFigures:
    """One run of one scenario."""

    scenario: str
    source: str  # "drill" (reused from the drill suite) or "bench"
    status: str
    rto_s: float | None
    requests: int = 0
    failed_requests: int = 0
    acked_orders: int = 0
    lost_orders: int = 0
    duplicate_orders: int = 0
    oversold_units: int = 0
    duration_s: float = 0.0
    reasons: list[str] = field(default_factory=list)
    cache_failover_s: float | None = None  # cache-primary-loss: new agreed Redis primary
    settle_s: float | None = None  # wait before the run until the lab was settled
    order_p99_ms: float | None = None  # successful orders while the fault lasted
    baseline_order_p99_ms: float | None = None  # successful orders before the fault

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["duration_s"] = round(self.duration_s, 1)
        return data


def run_once(scenario: str, topology: Topology, run_dir: Path) -> RunFigures:
    """One run of ``scenario`` on the lab of ``topology``; its journal lands in ``run_dir``.

    It starts from a settled lab (see :func:`settle`), so that no run measures what the
    previous one left behind.
    """
    settle_s, unsettled = settle(topology.stack)
    experiment = copy.deepcopy(experiment_for(scenario, dry_run=False))
    experiment.pop("steady-state-hypothesis", None)
    run = (run_dir / "run").resolve()
    configuration = {
        "peakready_target": "lab",
        "peakready_stack": topology.stack,
        "peakready_run_dir": str(run),
        "peakready_scenario": scenario,
    }
    started = time.monotonic()
    with Runner(Strategy.DEFAULT) as runner:
        journal: Journal = runner.run(
            experiment, settings=copy.deepcopy(SETTINGS), experiment_vars=(configuration, {})
        )
    result = ScenarioResult(name=scenario, duration_s=time.monotonic() - started)
    write_json(run_dir / "journal.json", journal)
    judge_run(result, journal, run, topology, configuration, dry_run=False, hypothesis=False)
    figures = _from_result(result, "bench")
    figures.settle_s = round(settle_s, 1)
    if unsettled:
        figures.reasons.append(f"started unsettled: {unsettled}")
    return figures


def settle(stack: str, timeout_s: float = SETTLE_TIMEOUT_S) -> tuple[float, str]:
    """Wait until the lab is back to full strength: every PostgreSQL replica streaming from
    the leader with a synchronous standby named, the Sentinels agreed on a master with its
    replicas known, every app instance ready. ``lab status`` (and so a restore) reports
    healthy a little earlier — while a demoted primary is still rewinding — and a fault in
    that window measures two failovers' worth of recovery (``synchronous_mode_strict``
    blocks writes while the new leader has no standby). Returns (seconds waited, what
    still was not settled at ``timeout_s``: "" when settled)."""
    # Imported here: the lab only when a run waits for it.
    from peakready.lab.state import LabState

    started = time.monotonic()
    missing = "lab state unreadable"
    while time.monotonic() - started < timeout_s:
        state = LabState.load(stack)
        missing = _unsettled(state, observe)
        if not missing:
            break
        time.sleep(1.0)
    return time.monotonic() - started, missing


def rto_objective(topology: Topology, scenario: str) -> float:
    return shared.rto_limit({"peakready_target": "lab"}, scenario, topology)


def from_drill(details: Path, scenarios: tuple[str, ...] | list[str]) -> dict[str, RunFigures]:
    """The runs of ``scenarios`` in a drill's ``details.json`` (missing ones left out)."""
    try:
        data = json.loads(details.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    out = {}
    for entry in data.get("scenarios", []):
        if entry.get("name") in scenarios:
            result = ScenarioResult(name=entry["name"])
            result.record(entry)
            out[result.name] = _from_result(result, "drill")
    return out


# private


def _unsettled(state: Any, observe: Any) -> str:
    cluster = observe.patroni_cluster(state)
    expected = len(state.endpoints.get("db_members", []))
    streaming = observe.streaming_replicas(state, cluster.get("leader"))
    if not cluster.get("leader"):
        return "PostgreSQL: no leader"
    if len(streaming) != expected - 1:
        return f"PostgreSQL: {len(streaming)}/{expected - 1} replicas streaming"
    if not cluster.get("sync_standby"):
        return "PostgreSQL: no synchronous standby"
    sentinels = observe.sentinel_master(state)
    views = [v for v in sentinels.get("sentinels", {}).values() if v]
    replicas = len(state.endpoints.get("redis", [])) - 1
    if not sentinels.get("agreed") or any(v["num_slaves"] < replicas for v in views):
        return "Redis Sentinels: not agreed on a master with all its replicas"
    instances = observe.app_instances(state)
    desired = int(state.app_group().get("desired", len(instances)))
    if sum(bool(i.get("ready")) for i in instances) < desired:
        return "storefront: fewer ready instances than desired"
    return ""


def _from_result(result: ScenarioResult, source: str) -> RunFigures:
    known = {f.name for f in fields(RunFigures)} - {"scenario", "source"}
    values = {k: v for k, v in {**result.extra, **asdict(result)}.items() if k in known}
    figures = RunFigures(scenario=result.name, source=source, **values)
    figures.duration_s = float(figures.duration_s or 0.0)
    figures.reasons = list(figures.reasons)
    return figures
