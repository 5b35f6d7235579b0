"""Two labs of one stack, from two folders, on one port block: they never touch each other.

A real lab starts in one folder; ``lab up`` from a second folder on the same port block
refuses in one line naming the first lab's folder, and ``lab down`` in the second folder
leaves the first running and healthy (DESIGN §9: a lab is identified by its folder).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_run import lab_cli, running_lab

from peakready.lab.health import LabStatus, status
from peakready.lab.plan import make_plan
from peakready.topology import REPO_ROOT, Topology

pytestmark = pytest.mark.lab

BASE = 26000  # its own block: 20000-25159 belong to other test areas
FIRST = REPO_ROOT / ".lab" / f"pytest-first-{BASE}"
SECOND = REPO_ROOT / ".lab" / f"pytest-second-{BASE}"


def test_a_second_lab_refuses_and_its_down_leaves_the_first_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_lab(BASE, FIRST) as first:
        try:
            up = lab_cli(BASE, SECOND, "up", "--stack", "dev", timeout=120)
            assert up.returncode == 2, up.stdout[-1000:] + up.stderr
            [line] = [x for x in up.stderr.splitlines() if x.strip()]
            assert line.startswith(f"peakready: error: port block {BASE}-{BASE + 159} is in use")
            assert f"by the lab in {FIRST}" in line

            down = lab_cli(BASE, SECOND, "down", "--stack", "dev", timeout=120)
            assert down.returncode == 0, down.stdout + down.stderr
            assert "nothing to stop" in down.stdout

            assert status("dev")[0] == LabStatus.HEALTHY  # the first lab, untouched
            assert all(Path(f"/proc/{p['pid']}").exists() for p in first.processes), (
                "a process of the first lab died"
            )
            topology = Topology.load("dev")
            monkeypatch.setenv("PEAKREADY_LAB_DIR", str(SECOND))
            assert make_plan(topology).cgroup != first.cgroup  # never one cgroup for two labs
        finally:
            lab_cli(BASE, SECOND, "down", "--stack", "dev", "--purge", timeout=120)
