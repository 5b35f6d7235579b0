"""A real lab for one test module: its own folder and port block, always torn down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peakready.lab.state import LabState

PEAKREADY = str(Path(sys.executable).parent / "peakready")


def lab_env(base: int, lab_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PEAKREADY_LAB_DIR": str(lab_dir),
        "PEAKREADY_LAB_PORT_BASE": str(base),
        "COLUMNS": "120",
    }


def lab_cli(
    base: int, lab_dir: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``peakready lab <args>`` on that lab."""
    return subprocess.run(
        [PEAKREADY, "lab", *args],
        env=lab_env(base, lab_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def running_lab(base: int, lab_dir: Path) -> Iterator[LabState]:
    """The dev stack's lab up from nothing (purged first), purged again afterwards; the
    process environment points at it meanwhile, so ``LabState.load`` finds it."""
    os.environ["PEAKREADY_LAB_DIR"] = str(lab_dir)
    os.environ["PEAKREADY_LAB_PORT_BASE"] = str(base)
    lab_cli(base, lab_dir, "down", "--stack", "dev", "--purge", timeout=120)
    try:
        up = lab_cli(base, lab_dir, "up", "--stack", "dev")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr
        yield LabState.load("dev")
    finally:
        lab_cli(base, lab_dir, "down", "--stack", "dev", "--purge", timeout=120)
        os.environ.pop("PEAKREADY_LAB_DIR", None)
        os.environ.pop("PEAKREADY_LAB_PORT_BASE", None)
