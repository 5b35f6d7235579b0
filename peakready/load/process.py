"""Start and stop the load generator process (used by the chaos control and the drill)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from peakready.errors import PeakreadyError
from peakready.load.ledger import LEDGER_FILE
from peakready.load.records import (
    FAULTS_FILE,
    GENERATOR_FILE,
    PROFILE_FILE,
    REQUESTS_FILE,
    SHARDS_DIR,
    run_records,
)
from peakready.load.settings import LoadSettings

PID_FILE = "load.pid"
WORKERS_DIR = "workers"  # local workers' own folders (their shards)
RUN_FILES = (REQUESTS_FILE, LEDGER_FILE, FAULTS_FILE, GENERATOR_FILE, PROFILE_FILE)
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
    for name in (*RUN_FILES, LOG_FILE, PID_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for log in run_dir.glob("worker-*.log"):
        log.unlink()
    for folder in (SHARDS_DIR, WORKERS_DIR):
        shutil.rmtree(run_dir / folder, ignore_errors=True)


def start(
    settings: LoadSettings,
    run_dir: Path,
    wait_s: float = 30.0,
    warmup_s: float = 0.0,
    workers: int = 0,
    remote_workers: int = 0,
    bind: str = "127.0.0.1:5557",
) -> LoadProcess:
    """Start the generator, wait for its first successful request, then ``warmup_s``
    more seconds so that what follows sees the steady state, not the ramp-up.

    ``workers`` local worker processes and ``remote_workers`` joining from elsewhere
    (``peakready load worker --master <bind>``) make it a Locust master on ``bind``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / LOG_FILE).open("ab")
    distributed = []
    if workers or remote_workers:
        distributed = [
            "--workers",
            str(workers),
            "--remote-workers",
            str(remote_workers),
            "--bind",
            bind,
        ]
        wait_s += 60  # workers join first
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "peakready.load",
            "--run-dir",
            str(run_dir),
            "--settings",
            json.dumps(settings.as_dict()),
            *distributed,
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
        if any(r.ok for r in run_records(run_dir)):
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
