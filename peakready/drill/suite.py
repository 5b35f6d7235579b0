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

from chaoslib.exceptions import ActivityFailed
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from peakready.drill import safety
from peakready.drill.runner import run_scenario
from peakready.errors import PeakreadyError
from peakready.report import html
from peakready.report.summary import DrillResult, ScenarioResult, validate, write_json
from peakready.topology import Topology

__all__ = ["run"]

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
) -> int:
    """Run a drill; 0 when every scenario passed, 1 when one failed, 130 on Ctrl-C."""
    console = console or Console()
    topology = Topology.load(stack)
    chosen = safety.choose(scenarios)
    safety.check(topology, dry_run, allow_protected)
    if target not in ("lab", "aws"):
        raise PeakreadyError(f"--target {target!r}: expected lab or aws")
    if target != "lab" and "backup-restore" in chosen:
        chosen.remove("backup-restore")
        console.print("backup-restore: runs on the lab target only; skipped")
    if dry_run and "backup-restore" in chosen:
        chosen.remove("backup-restore")
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    log_to(report_dir / "drill.log")
    if target == "lab":
        _ensure_lab(topology, console)
    result = DrillResult(target, stack, started=_now(), dry_run=dry_run)
    interrupted = False
    # SIGTERM stops a drill like Ctrl-C does: restore first (chaoslib handles it the
    # same way while an experiment runs).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        interrupted = _run_all(result, chosen, topology, target, report_dir, dry_run, console)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if interrupted:
            console.print("[yellow]interrupted: restoring the environment…[/]")
            _restore_uninterruptibly(target, stack, console)
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
                    scenario, topology, target, report_dir, dry_run, say
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
    from peakready.backup.lab import run_backup_drill
    from peakready.chaos.drivers.lab import lab_healthy
    from peakready.lab.state import LabState

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
    if outcome.rto_s is not None and outcome.rto_s > objective.rto_s:
        outcome.reasons.append(
            f"restore RTO {outcome.rto_s:.1f} s > objective {objective.rto_s:g} s"
        )
    rpo = detail.get("rpo_s")
    if rpo is not None and rpo > objective.rpo_s:
        outcome.reasons.append(f"RPO {rpo:.1f} s > objective {objective.rpo_s:g} s")
    if not outcome.steady_state_after:
        outcome.reasons.append("lab not healthy after the backup drill")
    outcome.status = "failed" if outcome.reasons else "passed"
    result.backup = detail
    result.backup_detail = detail
    write_json(report_dir / outcome.journal, detail)  # type: ignore[operator]
    return outcome


def _ensure_lab(topology: Topology, console: Console) -> None:
    """Bring the lab up when none runs; repair it when it runs degraded."""
    from peakready.lab import runtime

    code, _ = runtime.status(topology.stack)
    if code == 2:
        console.print(f"lab of stack {topology.stack}: not running, starting it")
        runtime.up(topology, console)
    elif code == 1:
        console.print(f"lab of stack {topology.stack}: degraded, restoring it")
        _restore_uninterruptibly("lab", topology.stack, console)
    code, _ = runtime.status(topology.stack)
    if code != 0:
        raise PeakreadyError(
            f"lab of stack {topology.stack} is not healthy: see `peakready lab status`",
            exit_code=1,
        )


def _restore_uninterruptibly(target: str, stack: str, console: Console) -> None:
    """``driver.restore()`` with Ctrl-C and SIGTERM ignored until it is done."""
    from peakready.chaos import shared

    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        configuration = {"peakready_target": target, "peakready_stack": stack}
        shared.driver(configuration).restore()
        console.print("environment restored")
    except (ActivityFailed, PeakreadyError) as exc:
        console.print(f"[red]restore failed: {exc}[/]")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


def log_to(path: Path) -> None:
    """chaoslib and peakready logs go to ``path``, not over the progress display."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("chaostoolkit", "peakready"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
