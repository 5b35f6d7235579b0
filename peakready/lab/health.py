"""``lab status``: every component's health, probed at once, and the live outputs.

:class:`LabStatus` names the exit codes (DESIGN §5): 0 healthy, 1 degraded, 2 no lab.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from enum import IntEnum
from typing import Any

from peakready.errors import PeakreadyError
from peakready.lab import proc as procmod
from peakready.lab.assembly import COMPONENTS
from peakready.lab.components.base import Row
from peakready.lab.state import LabState, lab_dir


class LabStatus(IntEnum):
    """Exit codes of ``peakready lab status``."""

    HEALTHY = 0
    DEGRADED = 1
    NOT_RUNNING = 2


def runs(state: LabState, entry: dict[str, Any]) -> bool:
    """A recorded process still runs, and is still the lab's (PIDs get reused)."""
    return procmod.belongs(int(entry["pid"]), state.lab_dir, entry.get("data_dir"))


def running_state(stack: str) -> LabState | None:
    """The lab's state when its processes run; None when there is no state file.

    A state file whose recorded processes are all gone is stale: an error.
    """
    path = lab_dir(stack) / "state.json"
    if not path.exists():
        return None
    state = LabState.load(stack)
    procs = state.processes
    if procs and any(runs(state, p) for p in procs):
        return state
    raise PeakreadyError(
        f"stale state file {path}: none of its recorded processes runs; "
        f"run `peakready lab down --stack {stack}` to clear it"
    )


def process_rows(state: LabState) -> list[Row]:
    rows = []
    for entry in state.processes:
        ok = runs(state, entry)
        frozen = entry.get("az") and procmod.freezer_state(state.cgroup / entry["az"]) == "FROZEN"
        detail = f"pid {entry['pid']}, port {entry['port']}"
        if frozen:
            detail += ", AZ frozen"
        rows.append(
            Row(f"process {entry['name']}", ok and not frozen, detail if ok else "not running")
        )
    return rows


def health_report(state: LabState) -> dict[str, Any]:
    """Health per component and the live outputs (DESIGN §3).

    Each component probes in its own thread: every probe is bounded, so a frozen AZ
    costs the report one probe timeout, not one per component.
    """
    outputs = state.outputs
    with ThreadPoolExecutor(max_workers=len(COMPONENTS)) as pool:
        futures = [pool.submit(c.health, state, outputs) for c in COMPONENTS]
        rows = process_rows(state)
        for future in futures:
            rows += future.result()
    return {
        "healthy": all(row.ok for row in rows),
        "components": [{"name": r.name, "healthy": bool(r.ok), "detail": r.detail} for r in rows],
        "outputs": outputs,
    }


def status(stack: str) -> tuple[LabStatus, dict[str, Any]]:
    """``(exit code, report)`` of the lab of ``stack``."""
    try:
        state = LabState.load(stack)
    except PeakreadyError as exc:
        return LabStatus.NOT_RUNNING, {
            "healthy": False,
            "components": [],
            "outputs": {},
            "error": exc.lines[0],
        }
    if not any(runs(state, p) for p in state.processes):
        return LabStatus.NOT_RUNNING, {
            "healthy": False,
            "components": [],
            "outputs": {},
            "error": f"stale state file {state.path}: no recorded process runs",
        }
    report = health_report(state)
    return (LabStatus.HEALTHY if report["healthy"] else LabStatus.DEGRADED), report
