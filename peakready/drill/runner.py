"""One chaos scenario through chaoslib's API: journal, figures, verdict."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.loader import load_experiment
from chaoslib.run import RunEventHandler, Runner
from chaoslib.types import Activity, Experiment, Journal, Run, Strategy

from peakready.chaos import shared
from peakready.chaos.verify.shared import (
    figures_of,
    peak_figures_of,
    peak_reasons,
    scenario_reasons,
)
from peakready.errors import PeakreadyError
from peakready.load.records import first_fault_at, read_events, run_records
from peakready.load.shape import read_started_profile
from peakready.monitoring import alerts as alert_catalogue
from peakready.monitoring.detection import AlertWatcher, Seen
from peakready.monitoring.detection import judge as detection_judge
from peakready.report import peak_timeline as peak_png
from peakready.report import timeline as timeline_png
from peakready.report.summary import ScenarioResult, write_json
from peakready.topology import REPO_ROOT, Topology
from peakready.verdict.failover import Figures
from peakready.verdict.peak import PEAK_SCENARIOS, PeakFigures

EXPERIMENTS_DIR = REPO_ROOT / "chaos"

#: chaoslib settings for a drill: rollbacks run whatever happens (failure, Ctrl-C).
SETTINGS: dict[str, Any] = {"runtime": {"rollbacks": {"strategy": "always"}}}

#: What a dry run does instead of the method: read the stack outputs (no fault).
DRY_METHOD = [
    {
        "type": "probe",
        "name": "stack-outputs",
        "provider": {
            "type": "python",
            "module": "peakready.chaos.stack.probes",
            "func": "stack_outputs",
        },
    }
]


@dataclass(frozen=True)
class LoadOptions:
    """How the load is generated: one process (0 workers), or a Locust master with
    ``workers`` local worker processes and ``remote_workers`` joining ``master_bind``."""

    workers: int = 0
    remote_workers: int = 0
    master_bind: str = "127.0.0.1:5557"


class _Progress(RunEventHandler):  # type: ignore[misc]
    """Forwards each activity's name to the progress display."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def start_hypothesis_before(self, experiment: Experiment) -> None:
        self.say("steady state before")

    def start_method(self, experiment: Experiment) -> None:
        self.say("method")

    def start_hypothesis_after(self, experiment: Experiment) -> None:
        self.say("steady state after")

    def start_rollbacks(self, experiment: Experiment) -> None:
        self.say("rollbacks")

    def start_activity(self, activity: Activity) -> None:
        self.say(str(activity.get("name", "")))

    def activity_completed(self, activity: Activity, run: Run) -> None:
        pass


def experiment_for(scenario: str, dry_run: bool, peak: dict[str, Any] | None = None) -> Experiment:
    """``chaos/<scenario>.yaml``; ``peak`` overrides its load's peak settings (surge…)."""
    experiment: Experiment = load_experiment(str(EXPERIMENTS_DIR / f"{scenario}.yaml"))
    if peak:
        experiment = copy.deepcopy(experiment)
        for control in experiment.get("controls", []):
            arguments = control.get("provider", {}).get("arguments", {})
            if "peak" in arguments:
                arguments["peak"] = {**arguments["peak"], **peak}
    if dry_run:
        experiment = copy.deepcopy(experiment)
        # Probes only: no fault, no rollback, no load, no order placed.
        experiment["method"] = DRY_METHOD
        experiment["rollbacks"] = []
        experiment.pop("controls", None)
        hypothesis = experiment.get("steady-state-hypothesis", {})
        hypothesis["probes"] = [
            p for p in hypothesis.get("probes", []) if p.get("name") != "orders-accepted"
        ]
    return experiment


def run_scenario(
    scenario: str,
    topology: Topology,
    target: str,
    report_dir: Path,
    dry_run: bool = False,
    say: Callable[[str], None] = lambda _: None,
    load: LoadOptions | None = None,
    peak: dict[str, Any] | None = None,
) -> tuple[ScenarioResult, Journal]:
    """Run ``chaos/<scenario>.yaml`` with load, then measure and judge it."""
    run = (report_dir / "runs" / scenario).resolve()
    load = load or LoadOptions()
    configuration: dict[str, Any] = {
        "peakready_target": target,
        "peakready_stack": topology.stack,
        "peakready_run_dir": str(run),
        "peakready_scenario": scenario,
        "peakready_load_workers": load.workers,
        "peakready_remote_workers": load.remote_workers,
        "peakready_master_bind": load.master_bind,
    }
    if target == "aws":
        configuration["aws_region"] = topology.region  # chaostoolkit-aws reads it
    started = time.monotonic()
    if not dry_run:
        settle(configuration, topology.alarms.resolve_s, say)
    watcher = None if dry_run else _alert_watcher(configuration)
    try:
        with Runner(Strategy.DEFAULT) as runner:
            runner.register_event_handler(_Progress(say))
            journal: Journal = runner.run(
                experiment_for(scenario, dry_run, peak),
                settings=copy.deepcopy(SETTINGS),
                experiment_vars=(dict(configuration), {}),
            )
    except BaseException:
        if watcher is not None:
            watcher.stop()
        raise
    ended_at = time.time()
    result = ScenarioResult(name=scenario, duration_s=time.monotonic() - started)
    result.journal = f"journals/{scenario}.json"
    write_json(report_dir / result.journal, journal)
    say("verifying")
    judge_run(result, journal, run, topology, configuration, dry_run)
    events = read_events(run)
    if watcher is not None:
        say("alerts resolving")
        resolve_s = topology.alarms.resolve_s
        watcher.wait_resolved(max(0.0, ended_at + resolve_s - time.time()))
        seen = with_history(watcher.stop(), _alert_history(configuration, watcher.started_at))
        asked = (watcher.polls, watcher.failed_polls)
        judge_alerts(result, seen, asked, watcher.started_at, run, topology, ended_at)
        events += [
            {"type": "alert", "name": s.name, "at": s.fired_at, "until": s.resolved_at}
            for s in seen
            if not s.carried
        ]
    records = run_records(run)
    if records:
        out = report_dir / "timelines" / f"{scenario}.png"
        if result.peak is not None:
            title = f"{scenario}: {result.status}"
            instances = result.peak.get("instances") or []
            peak_png.plot(records, events, instances, topology.slo, title, out)
        else:
            timeline_png.plot(records, events, scenario, out, result.rto_s)
        result.timeline = f"timelines/{scenario}.png"
    return result, journal


def settle(
    configuration: dict[str, Any],
    timeout_s: float,
    say: Callable[[str], None],
    poll_s: float = 1.0,
) -> list[str]:
    """Until no page alert is pending or firing (an earlier scenario's, still in a rule's
    window), at most ``timeout_s``: a steady state starts steady. Returns what was still
    unsettled at the deadline (the scenario's noise check then reports it)."""
    try:
        drv = shared.driver(configuration)
    except ActivityFailed:
        return []
    deadline = time.monotonic() + timeout_s
    while (unsettled := drv.unsettled_alerts()) and time.monotonic() < deadline:
        say(f"waiting for {', '.join(unsettled)} to settle")
        time.sleep(poll_s)
    return unsettled or []


def _alert_watcher(configuration: dict[str, Any]) -> AlertWatcher | None:
    """A watcher on the target's alerts, started (None when there is no target to ask:
    the experiment then fails on its own)."""
    try:
        drv = shared.driver(configuration)
    except ActivityFailed:
        return None
    watcher = AlertWatcher(drv.alerts)
    watcher.start()
    return watcher


def _alert_history(configuration: dict[str, Any], since: float) -> list[Seen] | None:
    """What the target recorded of its alerts since ``since`` (None: no history)."""
    try:
        return shared.driver(configuration).alert_history(since, time.time())
    except ActivityFailed:
        return None


def with_history(polled: list[Seen], history: list[Seen] | None) -> list[Seen]:
    """The target's own history where it keeps one (exact times, and episodes between
    two polls), plus what the polls saw of alerts the history does not name (carried
    from before the window, or not yet in a history that lags)."""
    if history is None:
        return polled
    known = {s.fingerprint for s in history}
    kept = [s for s in polled if s.fingerprint not in known]
    return sorted(kept + history, key=lambda s: s.fired_at)


#: Share of the watcher's polls the monitoring may miss before detection is not judged.
MAX_FAILED_POLLS = 0.2


def judge_alerts(
    result: ScenarioResult,
    seen: list[Seen],
    asked: tuple[int, int],
    watch_started: float,
    run: Path,
    topology: Topology,
    recovered_at: float,
) -> None:
    """The scenario's ``alerts`` and ``mttd_s``, and its verdict on them (noise in the
    steady state, an expected alert silent past ``alarms.mttd_s`` or never resolved).
    ``asked``: how many times the watcher asked, and how many got no answer."""
    polls, failed = asked
    fault_at = first_fault_at(read_events(run))
    steady_until = fault_at
    if result.name in PEAK_SCENARIOS:
        # A peak's steady state ends where the ramp begins (the surge is the stimulus).
        try:
            started = read_started_profile(run)
            ramp = started.started + started.profile.baseline_s
            steady_until = ramp if fault_at is None else min(ramp, fault_at)
        except PeakreadyError:
            pass
    detection = detection_judge(
        seen,
        alert_catalogue.expected(topology, result.name),
        watch_started,
        steady_until,
        fault_at,
        recovered_at,
        topology.alarms.mttd_s,
        topology.alarms.resolve_s,
        frozenset(a.name for a in alert_catalogue.catalogue(topology) if a.severity == "ticket"),
    )
    result.alerts, result.mttd_s = detection.alerts, detection.mttd_s
    result.reasons += detection.reasons
    if polls and failed > polls * MAX_FAILED_POLLS:
        result.reasons.append(
            f"monitoring answered {polls - failed} of {polls} polls: alerts not judged"
            + (" (no monitoring tier? lab down, then lab up)" if failed == polls else "")
        )
    if result.reasons and result.status == "passed":
        result.status = "failed"


def hypothesis_missed(after: dict[str, Any]) -> str:
    """The reason a steady state after the method was not met, naming the probes out of
    tolerance (a verdict probe records its own reasons; the others only say no)."""
    missed = []
    for probe in after.get("probes", []):
        if not probe.get("tolerance_met"):
            name = str(probe.get("activity", {}).get("name"))
            if probe.get("status") == "failed":
                name += f" ({(probe.get('exception') or ['raised'])[-1].strip()})"
            missed.append(name)
    names = f": {', '.join(missed)}" if missed else ""
    return f"steady state not met after the method{names}"


def judge_run(
    result: ScenarioResult,
    journal: Journal,
    run: Path,
    topology: Topology,
    configuration: dict[str, Any],
    dry_run: bool,
    hypothesis: bool = True,
) -> None:
    """Fill ``result`` with the figures of ``run`` and the verdict on them.

    ``hypothesis``: the experiment ran its steady-state hypothesis (the bench leaves it
    out), so a hypothesis not met after the method fails the run.
    """
    scenario = result.name
    objective = topology.objective(scenario)
    result.rto_objective_s = shared.rto_limit(configuration, scenario, topology)
    result.max_failed_requests = objective.max_failed_requests
    if scenario == "app-instance-loss" and result.max_failed_requests is None:
        result.max_failed_requests = 0
    after = (journal.get("steady_states") or {}).get("after") or {}
    result.steady_state_after = bool(after.get("steady_state_met"))
    try:
        figures = figures_of(run, scenario, configuration, None)
    except ActivityFailed as exc:
        figures = Figures()
        result.reasons.append(f"ledger not verified: {exc}")
    result.record(asdict(figures))
    status = journal.get("status")
    if status in ("interrupted", "aborted"):
        result.status = "aborted"
        result.reasons.append(f"experiment {status}")
        return
    if scenario in PEAK_SCENARIOS:
        if not figures.fault_at:
            result.rto_s = None  # no fault: nothing to recover from
        try:
            measured = peak_figures_of(run, scenario, configuration, None)
        except ActivityFailed as exc:
            measured = PeakFigures()
            result.reasons.append(f"peak figures not measured: {exc}")
        result.peak = measured.as_dict()
        if not dry_run:
            result.reasons += peak_reasons(scenario, figures, measured, configuration)
    elif not dry_run:
        result.reasons += scenario_reasons(scenario, figures, configuration, topology)
    elif figures.lost_orders or figures.duplicate_orders or figures.oversold_units:
        result.reasons.append("ledger and database disagree")
    if status != "completed":
        result.reasons.append(f"experiment {status}")
    if hypothesis and (journal.get("deviated") or not result.steady_state_after):
        result.reasons.append(hypothesis_missed(after))
    # A rollback that failed left the stack broken: that fails the scenario too.
    for activity in journal.get("run", []) + journal.get("rollbacks", []):
        if activity.get("status") == "failed":
            name = activity.get("activity", {}).get("name")
            result.reasons.append(f"{name} failed: {activity.get('exception', [''])[-1].strip()}")
    result.status = "failed" if result.reasons else "passed"
