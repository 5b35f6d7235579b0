"""``lab down``: stop exactly what ``up`` started, wave by wave (see :class:`Wave`)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from peakready.errors import PeakreadyError
from peakready.lab import control
from peakready.lab import proc as procmod
from peakready.lab.assembly import COMPONENTS
from peakready.lab.components.base import WAVE_TIMEOUT_S, Wave
from peakready.lab.plan import make_plan
from peakready.lab.state import LabState, lab_dir
from peakready.topology import Topology

WAVE_NAMES = {
    Wave.SERVERS: "servers, supervisor and app instances",
    Wave.CHILDREN: "children the servers left (postmasters)",
    Wave.STORE: "etcd",
}


def teardown(state: LabState) -> list[str]:
    """Stop every process ``state`` records (and any left in the lab's cgroups).

    Wave by wave: everything but the store at once (Patroni stops its PostgreSQL while
    etcd is still there to release the leader key), then what the servers left behind,
    then the store.
    """
    problems: list[str] = []
    if not state.data.get("processes") and not state.data.get("cgroup"):
        return problems
    control.thaw_all(state)
    timings = _Timings(state.lab_dir / "logs" / "down.log")
    for wave in Wave:
        targets = [t for c in COMPONENTS for t in c.stop_targets(state, wave)]
        with timings(f"{len(targets)} {WAVE_NAMES[wave]}"):
            control.stop_pids(state, targets, timeout=WAVE_TIMEOUT_S[wave])
    # What is still in the lab's cgroups (keyed by its folder) and works in its folder
    # was started by the lab (app instances, PostgreSQL children): stop it too.
    leftovers: list[tuple[int, str | None]] = [
        (pid, None)
        for sub in [state.cgroup, *(state.cgroup / az for az in state.azs)]
        for pid in procmod.cgroup_pids(sub)
        if procmod.belongs(pid, state.lab_dir)
    ]
    with timings(f"{len(leftovers)} leftovers in the lab's cgroups"):
        left = control.stop_pids(state, leftovers, timeout=5)
    if left:
        problems.append(f"processes still running: {left}")
    # A killed process may take a moment to finish exiting on a busy machine: its
    # cgroup stays busy and its ports open until then.
    deadline = time.monotonic() + 15
    for group in (state.cgroup, state.cpu_cgroup):
        while True:
            try:
                procmod.remove_cgroups(group)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    problems.append(f"cannot remove {group}: {exc}")
                    break
                time.sleep(0.2)
    return problems


class _Timings:
    """Appends how long each phase of ``down`` took to ``<lab>/logs/down.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            with contextlib.suppress(OSError), self.path.open("a") as log:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                log.write(f"{stamp} stopped {what} in {time.monotonic() - started:.1f}s\n")


def _sweep_orphans(stack: str, folder: Path) -> int:
    """Stop what is left in this lab's cgroups when its state file is gone or broken."""
    try:
        plan = make_plan(Topology.load(stack))
    except PeakreadyError:
        return 0
    if not plan.cgroup.exists():
        return 0
    groups = [plan.cgroup, *(plan.cgroup / az for az in plan.azs)]
    count = sum(
        procmod.belongs(pid, folder) for group in groups for pid in procmod.cgroup_pids(group)
    )
    orphan = LabState(
        folder / "state.json",
        {
            "stack": stack,
            "lab_dir": str(folder),
            "port_base": plan.ports.base,
            "azs": plan.azs,
            "cgroup": str(plan.cgroup),
            "processes": [],
        },
    )
    problems = teardown(orphan)
    if problems:
        raise PeakreadyError(f"lab down incomplete: {'; '.join(problems)}", exit_code=1)
    return count


def down(stack: str, console: Console, purge: bool = False) -> int:
    """Stop exactly what ``up`` started; safe to run twice. ``purge`` removes the lab folder."""
    folder = lab_dir(stack)
    path = folder / "state.json"
    if not path.exists():
        swept = _sweep_orphans(stack, folder)
        if swept:
            console.print(f"no state file, but stopped {swept} lab processes left in the cgroups")
        else:
            console.print(f"no lab running for stack {stack} ({folder}): nothing to stop")
    else:
        try:
            state: LabState | None = LabState.load(stack)
        except PeakreadyError:
            state = None
            path.unlink()
            _sweep_orphans(stack, folder)
        if state is not None:
            started = time.monotonic()
            problems = teardown(state)
            deadline = time.monotonic() + 10
            while (listening := procmod.listening_ports(state.ports.block)) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.2)
            if listening:
                problems.append(f"ports still listening: {listening}")
            if problems:
                raise PeakreadyError(f"lab down incomplete: {'; '.join(problems)}", exit_code=1)
            path.replace(folder / "state.last.json")
            console.print(
                f"lab {stack} stopped in {time.monotonic() - started:.1f}s: no process left, "
                f"no port listening in {state.ports.base}-{state.ports.block[-1]}"
            )
    if purge and folder.exists():
        shutil.rmtree(folder)
        console.print(f"removed {folder}")
    return 0
