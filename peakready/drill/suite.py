"""``peakready drill``: chaos scenarios with load flowing, the backup drill, the report.

Safety first (DESIGN §9), then the lab if needed, then each chosen scenario in
DESIGN §6 order through chaoslib's API (rollbacks always), then ``summary.json``,
``report.html``, ``timelines/<scenario>.png`` and ``journals/<scenario>.json``.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import peakready.drill.safety as safety
from peakready.drill.runner import LoadOptions, run_scenario
from peakready.errors import PeakreadyError
from peakready.logs import log_to
from peakready.report import html
from peakready.report.summary import DrillResult, ScenarioResult, validate, write_json
from peakready.targets import TARGETS, get_driver
from peakready.targets.base import restore_uninterruptibly
from peakready.topology import PIPELINE_SCENARIOS, Topology
from peakready.verdict.restore import policy_reasons

#: The exit code of a drill stopped by Ctrl-C.
INTERRUPTED = 130


def run(
    target: str,
    stack: str,
    scenarios: list[str] | None,
    report_dir: Path,
    dry_run: bool = False,
    allow_protected: bool = False,
    console: Console | None = None,
    load: LoadOptions | None = None,
) -> int:
    """Run a drill; 0 when every scenario passed, 1 when one failed, 130 on Ctrl-C."""
    console = console or Console()
    topology = Topology.load(stack)
    chosen = safety.choose(scenarios)
    if topology.queue is None:
        asked = [s for s in chosen if s in PIPELINE_SCENARIOS and scenarios]
        if asked:
            raise PeakreadyError(
                f"--scenario {asked[0]}: stack {stack} has no queue tier (peakready:queue)"
            )
        chosen = [s for s in chosen if s not in PIPELINE_SCENARIOS]
    safety.check(topology, dry_run, allow_protected)
    if target not in TARGETS:
        raise PeakreadyError(f"--target {target!r}: expected {' or '.join(TARGETS)}")
    if target != "lab" and "backup-restore" in chosen:
        chosen.remove("backup-restore")
        console.print(
            "backup-restore: skipped here; on AWS it runs as `peakready backup drill --target aws`"
        )
    if dry_run and "backup-restore" in chosen:
        chosen.remove("backup-restore")
    if dry_run and not _dry_run_can_probe(topology, target, chosen, allow_protected, console):
        return 0
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    log_to(report_dir / "drill.log")
    if target == "lab" and not dry_run:
        from peakready.targets.lab import ensure_lab  # lazy: an AWS drill needs no lab

        ensure_lab(topology, console)
    result = DrillResult(target, stack, started=_now(), dry_run=dry_run)
    interrupted = False
    # SIGTERM stops a drill like Ctrl-C does: restore first (chaoslib handles it the
    # same way while an experiment runs).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        interrupted = _run_all(
            result, chosen, topology, target, report_dir, dry_run, console, load or LoadOptions()
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if interrupted:
            console.print("[yellow]interrupted: restoring the environment…[/]")
            restore_uninterruptibly(lambda: get_driver(target, stack), console)
        result.finished = _now()
        _write_reports(result, report_dir)
        signal.signal(signal.SIGTERM, previous)
    _print_summary(result, report_dir, console)
    if interrupted:
        return INTERRUPTED
    return 0 if result.passed else 1


def _run_all(
    result: DrillResult,
    chosen: list[str],
    topology: Topology,
    target: str,
    report_dir: Path,
    dry_run: bool,
    console: Console,
    load: LoadOptions,
) -> bool:
    """Run the scenarios in order; True when Ctrl-C stopped the drill."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for scenario in chosen:
            task = progress.add_task(f"{scenario}: starting", total=None)

            def say(step: str, task: Any = task, scenario: str = scenario) -> None:
                progress.update(task, description=f"{scenario}: {step}")

            if scenario == "backup-restore":
                outcome = _backup(topology, report_dir, result)
            else:
                outcome, journal = run_scenario(
                    scenario, topology, target, report_dir, dry_run, say, load
                )
                if journal.get("status") == "interrupted":
                    result.scenarios.append(outcome)
                    progress.update(task, description=f"{scenario}: [red]aborted[/]")
                    return True
            result.scenarios.append(outcome)
            _write_reports(result, report_dir)  # a report even if the next one hangs
            colour = "green" if outcome.status == "passed" else "red"
            rto = f", RTO {outcome.rto_s:.1f} s" if outcome.rto_s is not None else ""
            progress.update(
                task,
                total=1,
                completed=1,
                description=f"{scenario}: [{colour}]{outcome.status}[/]{rto}",
            )
    return False


def _backup(topology: Topology, report_dir: Path, result: DrillResult) -> ScenarioResult:
    """The backup-restore scenario: the backup drill's own verdict plus the policy."""
    from peakready.backup.lab import run_backup_drill  # lazy: lab-only, heavy
    from peakready.lab.state import LabState
    from peakready.targets.lab import lab_healthy

    outcome = ScenarioResult(name="backup-restore", journal="journals/backup-restore.json")
    started = time.monotonic()
    work_dir = report_dir / "runs" / "backup-restore"
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        backup = run_backup_drill(topology, LabState.load(topology.stack), work_dir)
        detail: dict[str, Any] = dict(backup.summary())
    except PeakreadyError as exc:
        detail = {"passed": False, "reasons": [str(exc)]}
    outcome.duration_s = time.monotonic() - started
    objective = topology.objective("backup-restore")
    outcome.rto_objective_s = float(objective.rto_s)
    outcome.rto_s = detail.get("rto_s")
    outcome.acked_orders = int(detail.get("verified_orders") or 0)
    outcome.lost_orders = int(detail.get("missing_orders") or 0)
    outcome.steady_state_after = lab_healthy(topology.stack)
    outcome.reasons = [str(r) for r in detail.get("reasons") or []]
    if not detail.get("passed"):
        outcome.reasons = outcome.reasons or ["the backup drill failed"]
    outcome.reasons += policy_reasons(outcome.rto_s, detail.get("rpo_s"), objective)
    if not outcome.steady_state_after:
        outcome.reasons.append("lab not healthy after the backup drill")
    outcome.status = "failed" if outcome.reasons else "passed"
    result.backup = detail
    result.backup_detail = detail
    write_json(report_dir / outcome.journal, detail)  # type: ignore[operator]
    return outcome


def _dry_run_can_probe(
    topology: Topology, target: str, chosen: list[str], allow_protected: bool, console: Console
) -> bool:
    """Say what a real run would do (safety rules, lab state, scenarios); True when there
    is something to probe. A dry run starts nothing: no lab, no load, no fault."""
    try:
        safety.check(topology, dry_run=False, allow_protected=allow_protected)
        console.print("dry run: the safety rules allow a real run now")
    except PeakreadyError as exc:
        console.print(f"dry run: a real run would be refused: {exc.lines[0]}", markup=False)
    console.print(f"dry run: a real run would rehearse {', '.join(chosen) or 'nothing'}")
    if target != "lab":
        return True
    # Imported here: the lab's health probes only for a lab drill.
    from peakready.lab.health import LabStatus, status

    code, report = status(topology.stack)
    if code == LabStatus.NOT_RUNNING:
        console.print(
            f"dry run: no lab of stack {topology.stack} runs ({report.get('error')}); a real "
            "run would start one first. Nothing to probe: nothing started, nothing written.",
            markup=False,
        )
        return False
    if code == LabStatus.DEGRADED:
        bad = [c["name"] for c in report["components"] if not c["healthy"]]
        console.print(
            f"dry run: the lab runs degraded ({', '.join(bad)}); a real run would restore it "
            "first. Probing it as it is.",
            markup=False,
        )
    else:
        console.print(f"dry run: the lab is healthy; outputs {report['outputs']}", markup=False)
    return True


def _write_reports(result: DrillResult, report_dir: Path) -> None:
    if not result.finished:
        result.finished = _now()
    summary = result.summary()
    problems = validate(summary) if summary["scenarios"] else []
    if problems:  # a bug here, never the user's: say it loudly in the log
        logging.getLogger("peakready.drill").error("summary.json off-contract: %s", problems)
    write_json(report_dir / "summary.json", summary)
    write_json(report_dir / "details.json", result.details())
    html.write(result, report_dir / "report.html")


def _print_summary(result: DrillResult, report_dir: Path, console: Console) -> None:
    for scenario in result.scenarios:
        for reason in scenario.reasons:
            console.print(f"  {scenario.name}: {reason}", markup=False, highlight=False)
    verdict = "[green]passed[/]" if result.passed else "[red]failed[/]"
    console.print(f"drill {verdict}: report in {report_dir}/report.html")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
