"""The only code that signals lab processes; it checks first that a PID belongs to the lab.

Used by ``lab down`` and by the chaos driver (docs/internals.md, "Python API").
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peakready.errors import PeakreadyError
from peakready.lab import proc as procmod
from peakready.lab.health import health_report
from peakready.lab.state import FREEZER_ROOT, LabState


def _az_group(state: LabState, az: str) -> Path:
    if az not in state.azs:
        raise PeakreadyError(f"unknown AZ {az!r}: the lab runs {', '.join(state.azs)}")
    return state.cgroup / az


def freeze_az(state: LabState, az: str, timeout: float = 5.0) -> list[int]:
    """Freeze every process of ``az`` at once (power loss); returns the frozen PIDs."""
    group = _az_group(state, az)
    (group / "freezer.state").write_text("FROZEN")
    deadline = time.monotonic() + timeout
    while procmod.freezer_state(group) != "FROZEN":
        if time.monotonic() > deadline:
            raise PeakreadyError(f"{group}: still {procmod.freezer_state(group)} after {timeout}s")
        time.sleep(0.02)
    return procmod.cgroup_pids(group)


def thaw_az(state: LabState, az: str) -> None:
    """Thaw ``az`` (the rollback of :func:`freeze_az`)."""
    group = _az_group(state, az)
    if group.exists():
        (group / "freezer.state").write_text("THAWED")


def thaw_all(state: LabState) -> None:
    for az in state.azs:
        if (state.cgroup / az).exists():
            thaw_az(state, az)


def postmaster_pid(proc: dict[str, Any]) -> int | None:
    """The PostgreSQL postmaster of a ``patroni`` process record (Patroni restarts it)."""
    data_dir = proc.get("data_dir")
    return procmod.postmaster_pid_from(data_dir) if data_dir else None


def resolve_pid(state: LabState, name: str) -> tuple[int | None, str | None]:
    """``(pid, data_dir)`` of a named lab process.

    Names: any process of ``state.json`` (``patroni-<az>``, ``redis-<az>``, ``haproxy``…),
    ``postgres-<az>`` for the postmaster under ``patroni-<az>``, or an app instance id
    (``app-<slot>``) from ``app_group.json``.
    """
    if name.startswith("postgres-"):
        proc = state.process("patroni-" + name.removeprefix("postgres-"))
        return postmaster_pid(proc), proc.get("data_dir")
    if name.startswith("app-"):
        for inst in state.app_group().get("instances", []):
            if inst["id"] == name:
                return int(inst["pid"]), None
        raise PeakreadyError(f"no app instance named {name!r} in {state.lab_dir}/app_group.json")
    proc = state.process(name)
    return int(proc["pid"]), proc.get("data_dir")


def kill_process(state: LabState, name: str, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to the named lab process (see :func:`resolve_pid`); returns its PID."""
    pid, data_dir = resolve_pid(state, name)
    if pid is None or not procmod.alive(pid):
        raise PeakreadyError(f"lab process {name} is not running")
    signal_pid(state, pid, sig, data_dir)
    return pid


def signal_tree(state: LabState, name: str, sig: int) -> list[int]:
    """Send ``sig`` to the named lab process and its direct children at once (a server
    script and its VM, as a lost machine would); the PIDs signalled."""
    proc = state.process(name)
    pid = int(proc["pid"])
    return [
        p for p in [*procmod.children(pid), pid] if signal_pid(state, p, sig, proc.get("data_dir"))
    ]


def signal_pid(state: LabState, pid: int, sig: int, data_dir: str | Path | None = None) -> bool:
    """Signal ``pid`` if it belongs to the lab; False when it is gone or not the lab's."""
    if not procmod.belongs(pid, state.lab_dir, data_dir) and not _in_lab_cgroup(state, pid):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _in_lab_cgroup(state: LabState, pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    try:
        relative = str(state.cgroup.relative_to(FREEZER_ROOT))
    except ValueError:
        return False
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "freezer" in parts[1].split(","):
            return parts[2] == "/" + relative or parts[2].startswith("/" + relative + "/")
    return False


def restart_process(state: LabState, name: str, wait: float = 5.0) -> int:
    """Start a stopped lab server again with its recorded command and environment.

    It goes back into its AZ's cgroup (regional ones into the lab's); the new PID is
    recorded in ``state.json``. Returns the new PID.
    """
    proc = state.process(name)
    if procmod.alive(proc["pid"]) and procmod.belongs(
        proc["pid"], state.lab_dir, proc.get("data_dir")
    ):
        raise PeakreadyError(f"lab process {name} is still running (pid {proc['pid']})")
    group = state.cgroup / proc["az"] if proc.get("az") else state.cgroup
    if procmod.freezer_state(group) == "FROZEN":
        raise PeakreadyError(f"{name}: its AZ {proc['az']} is frozen; thaw it first")
    child = procmod.spawn(
        list(proc["cmd"]),
        env=dict(proc.get("env", {})),
        log=Path(proc["log"]),
        cgroup=group if group.exists() else None,
        cwd=Path(proc.get("cwd", state.lab_dir)),
    )
    if proc.get("pid_file"):
        pid = _wait_pid_file(Path(proc["pid_file"]), child.pid, wait)
    else:
        pid = child.pid
    state.replace_process({**proc, "pid": pid})
    return pid


def _wait_pid_file(path: Path, fallback: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(path.read_text().split()[0])
            if procmod.alive(pid):
                return pid
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.05)
    return fallback


def stop_pids(
    state: LabState,
    targets: Iterable[tuple[int, str | Path | None]],
    timeout: float = 15.0,
) -> list[int]:
    """SIGTERM each lab PID, wait up to ``timeout``, then SIGKILL; returns PIDs still alive."""
    pids = [(pid, data_dir) for pid, data_dir in targets if procmod.alive(pid)]
    for pid, data_dir in pids:
        signal_pid(state, pid, signal.SIGTERM, data_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(procmod.alive(pid) for pid, _ in pids):
        time.sleep(0.05)
    for pid, data_dir in pids:
        if procmod.alive(pid):
            signal_pid(state, pid, signal.SIGKILL, data_dir)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(procmod.alive(pid) for pid, _ in pids):
        time.sleep(0.05)
    return [pid for pid, _ in pids if procmod.alive(pid)]


def wait_healthy(state: LabState, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the lab's health until every component is healthy; returns the last report.

    Raises ``PeakreadyError`` naming the unhealthy components when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        report = health_report(state)
        if report["healthy"]:
            return report
        if time.monotonic() > deadline:
            bad = [c["name"] for c in report["components"] if not c["healthy"]]
            raise PeakreadyError(f"lab not healthy after {timeout:.0f}s: {', '.join(bad)}")
        time.sleep(0.5)
