"""The app instances' CPU groups against the kernel's scheduler (cgroup v1 ``cpu``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peakready.lab import proc
from peakready.lab.state import CPU_ROOT

pytestmark = pytest.mark.lab

HOG = [sys.executable, "-c", "while True: pass"]


def _total_cpu_s(processes: list[subprocess.Popen[bytes]]) -> float:
    return sum(proc.cpu_seconds(p.pid) for p in processes)


@pytest.fixture
def roots() -> Iterator[list[Path]]:
    made = [CPU_ROOT / f"peakready-test-{os.getpid()}-{name}" for name in ("weighed", "flat")]
    yield made
    for root in made:
        for group in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if group.is_dir():
                group.rmdir()
        root.rmdir()


def test_a_groups_instances_each_weigh_as_much_as_one_other_server(roots: list[Path]) -> None:
    """Two labs of two instances each (quota: a whole core, so the weight decides) and
    two busy servers outside, on a machine whose cores they all want: the lab whose
    group weighs as its instances gets twice the CPU of one left at the default."""
    if not CPU_ROOT.exists():
        pytest.skip("no cgroup v1 cpu controller")
    weighed, flat = roots
    hogs: dict[str, list[subprocess.Popen[bytes]]] = {"weighed": [], "flat": [], "out": []}
    try:
        for name, root, instances in (("weighed", weighed, 2), ("flat", flat, 1)):
            for n in range(2):
                group = root / "lab" / f"app-{n}"
                proc.make_cpu_group(group, 1.0, instances)
                hog = subprocess.Popen(HOG)
                (group / "cgroup.procs").write_text(str(hog.pid))
                hogs[name].append(hog)
        hogs["out"] = [subprocess.Popen(HOG) for _ in range(2)]
        time.sleep(0.5)
        start = {name: _total_cpu_s(group) for name, group in hogs.items()}
        time.sleep(3.0)
        used = {name: _total_cpu_s(group) - start[name] for name, group in hogs.items()}
    finally:
        for group in hogs.values():
            for hog in group:
                hog.kill()
                hog.wait()
    # Expected 2048 : 1024 : 2 x 1024 of the cores, so 2x; at equal weights it is 1x.
    assert used["weighed"] >= 1.5 * used["flat"], used
