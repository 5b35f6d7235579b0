"""Start and stop the load generator process (used by the chaos control and the drill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from peakready.errors import PeakreadyError
from peakready.load.ledger import LEDGER_FILE
from peakready.load.records import FAULTS_FILE, REQUESTS_FILE, read_records
from peakready.load.settings import LoadSettings

PID_FILE = "load.pid"
LOG_FILE = "load.log"


@dataclass
class LoadProcess:
    run_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None


def reset_run_dir(run_dir: Path) -> None:
    """Empty the files of a previous run in ``run_dir`` (only the load's own files)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (REQUESTS_FILE, LEDGER_FILE, FAULTS_FILE, LOG_FILE, PID_FILE):
        (run_dir / name).unlink(missing_ok=True)


def start(
    settings: LoadSettings, run_dir: Path, wait_s: float = 30.0, warmup_s: float = 0.0
) -> LoadProcess:
    """Start the generator, wait for its first successful request, then ``warmup_s``
    more seconds so that what follows sees the steady state, not the ramp-up."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / LOG_FILE).open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "peakready.load",
            "--run-dir",
            str(run_dir),
            "--settings",
            json.dumps(settings.as_dict()),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C at the terminal reaches the drill, not the load
    )
    log.close()
    (run_dir / PID_FILE).write_text(str(process.pid))
    load = LoadProcess(run_dir, process)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not load.running():
            tail = (run_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:]
            raise PeakreadyError(
                f"load generator exited ({process.returncode}): {' '.join(tail) or 'no output'}"
            )
        if any(r.ok for r in read_records(run_dir / REQUESTS_FILE)):
            time.sleep(warmup_s)
            return load
        time.sleep(0.3)
    stop(load)
    raise PeakreadyError(f"load generator: no successful request within {wait_s:.0f} s")


def stop(load: LoadProcess, timeout_s: float = 10.0) -> int:
    """Stop the generator (SIGTERM, then SIGKILL after ``timeout_s``); its exit code."""
    if load.running():
        load.process.send_signal(signal.SIGTERM)
        try:
            load.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            load.process.kill()
            load.process.wait(5)
    (load.run_dir / PID_FILE).unlink(missing_ok=True)
    return int(load.process.returncode or 0)


def stop_stray(run_dir: Path) -> None:
    """Stop a generator left by an earlier process (recorded PID, checked to be ours)."""
    pid_file = run_dir / PID_FILE
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return
    if b"peakready.load" in cmdline and str(run_dir).encode() in cmdline:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
