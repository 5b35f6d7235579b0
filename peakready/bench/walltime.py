"""Wall time of a ``peakready`` command, run as the user runs it (a child process)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peakready.errors import PeakreadyError


@dataclass(frozen=True)
class Timed:
    command: str
    seconds: float
    exit_code: int
    log: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "wall_s": round(self.seconds, 2),
            "exit_code": self.exit_code,
            "log": self.log,
        }


def peakready_binary() -> Path:
    """The ``peakready`` script beside this interpreter (the project's virtualenv)."""
    script = Path(sys.executable).parent / "peakready"
    if not script.exists():
        raise PeakreadyError(f"{script}: not found; run `make setup` first", exit_code=1)
    return script


def time_command(args: list[str], log: Path, timeout_s: float) -> Timed:
    """Run ``peakready <args>`` with its output to ``log``; bounded by ``timeout_s``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = ["peakready", *args]
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        try:
            done = subprocess.run(
                [str(peakready_binary()), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -1
    return Timed(" ".join(command), time.monotonic() - started, code, str(log))
