"""A tier's cost: only its own processes' PSS and CPU, beside the whole lab's."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import peakready.bench.tiers as tiers

BUSY = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 30: pass"
IDLE = "import time; time.sleep(30)"


class _State:
    """What ``tiers.cost`` reads of a lab: its processes and cgroups (none here)."""

    def __init__(self, pids: list[int]) -> None:
        self.processes = [{"pid": p} for p in pids]
        self.data: dict[str, Any] = {}
        self.cgroup = Path("/nonexistent-cgroup")
        self.azs: list[str] = []

    def app_group(self) -> dict[str, Any]:
        return {"instances": [{"id": "app-0"}, {"id": "app-1"}]}

    def backoffice_group(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def processes() -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    # The busy one runs as "peakready.monitoring" (the tier), the idle one as anything else.
    busy = subprocess.Popen([sys.executable, "-c", BUSY, "peakready.monitoring.probe"])
    idle = subprocess.Popen([sys.executable, "-c", IDLE])
    for p in (busy, idle):  # until each has exec'd (before, /proc shows pytest's cmdline)
        deadline = time.monotonic() + 10
        while b"-c" not in Path(f"/proc/{p.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    time.sleep(0.2)  # and imported its site
    yield busy, idle
    for p in (busy, idle):
        p.kill()
        p.wait()


def test_a_tier_counts_its_own_processes_only(
    processes: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    busy, idle = processes
    monkeypatch.setattr(tiers, "memory_pss_kib", lambda _state: {"regional": 100 * 1024})
    figures = tiers.cost(_State([busy.pid, idle.pid]), ("monitoring",), idle_s=1.0)  # type: ignore[arg-type]
    assert 1.0 < figures["tier_pss_mib"] < 60.0  # one Python interpreter, not two
    assert figures["lab_pss_mib"] == 100.0
    share = figures["tier_pss_mib"] / (100.0 - figures["tier_pss_mib"]) * 100
    assert figures["tier_adds_pss_percent"] == pytest.approx(share, abs=0.2)
    assert figures["tier_idle_cpu_percent"] > 20.0  # the busy loop (a core when it runs alone)
    assert (figures["app_instances"], figures["backoffice_workers"]) == (2, 0)


def test_processes_outside_the_tier_cost_it_nothing(
    processes: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]],
) -> None:
    _busy, idle = processes
    figures = tiers.cost(_State([idle.pid]), ("monitoring",), idle_s=0.5)  # type: ignore[arg-type]
    assert figures["tier_pss_mib"] == 0.0
    assert figures["tier_idle_cpu_percent"] < 5.0


class _Groups:
    """A lab whose groups hold ``app`` instances and ``workers`` workers."""

    def __init__(self, app: int, workers: int, terminating: bool = False) -> None:
        self.app, self.workers, self.terminating = app, workers, terminating
        self.endpoints = {"backoffice_desired": 3}

    def app_group(self) -> dict[str, Any]:
        return {"instances": [{}] * self.app, "terminating": [{}] if self.terminating else []}

    def backoffice_group(self) -> dict[str, Any]:
        return {"instances": [{}] * self.workers}


@pytest.mark.parametrize(
    ("lab", "at_rest"),
    [
        (_Groups(3, 3), True),
        (_Groups(5, 3), False),  # scaled out for a surge
        (_Groups(3, 6), False),  # workers scaled out for a backlog
        (_Groups(3, 3, terminating=True), False),  # still scaling in
    ],
)
def test_a_tier_is_measured_only_with_both_groups_at_their_lab_sizes(
    lab: _Groups, at_rest: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peakready.topology import Topology

    monkeypatch.setattr(tiers.LabState, "load", staticmethod(lambda _stack: lab))
    topology = Topology.load("dev")
    assert topology.lab.app_instances == 3
    assert tiers.wait_at_rest(topology, timeout_s=0) is at_rest
