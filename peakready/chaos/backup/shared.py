"""What the backup activities share: the lab they drill and their run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.types import Configuration

from peakready.chaos import shared
from peakready.errors import PeakreadyError
from peakready.topology import Topology


def lab_of(configuration: Configuration) -> tuple[Any, Any]:
    """``(topology, lab state)`` of the configured stack; the lab target only."""
    from peakready.lab.state import LabState  # lazy: chaos discovery needs no lab

    if shared.target_of(configuration) != "lab":
        raise InterruptExecution("backup-restore: this experiment drills the lab target only")
    stack = shared.stack_of(configuration)
    try:
        return Topology.load(stack), LabState.load(stack)
    except PeakreadyError as exc:
        raise InterruptExecution(f"backup-restore: {exc}") from None


def run_dir_of(configuration: Configuration) -> Path:
    """The run folder (``peakready_run_dir``, else ``.lab/runs/backup-restore``), made."""
    path = shared.run_dir({"peakready_scenario": "backup-restore", **(configuration or {})})
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__: list[str] = []  # helpers, not activities
