"""What one tier of the lab costs (``make bench`` phases ``pipeline`` and ``monitoring``).

The tier's processes are picked by their kind (``peakready.bench.cpu.kind_of``): their
PSS beside the whole lab's, and the CPU they spend over a quiet interval, as a share of
one core. The lab has 2 cores, so a tier's idle share is what it takes from every drill.
Both are measured with the app group and the back-office workers at their lab sizes
(:func:`wait_at_rest`): a group scaled out for a peak or a backlog is that load's cost,
not the tier's, and each figure says how many instances and workers it counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import peakready.bench.cpu as cpu
from peakready.lab import proc
from peakready.lab.observe import memory_pss_kib, pss_kib
from peakready.lab.state import LabState
from peakready.topology import Topology

#: Longest wait for both groups back at their lab sizes (the app group scales in one
#: instance per cooldown after a surge; the workers 30 s after a backlog drained).
AT_REST_TIMEOUT_S = 240.0


def cost(
    state: LabState,
    kinds: tuple[str, ...],
    idle_s: float,
    also: Callable[[str], bool] = lambda _cmdline: False,
) -> dict[str, Any]:
    """PSS (MiB) of the processes of ``kinds`` (and of those ``also`` picks by command
    line) and of the whole lab, and the CPU ``kinds`` spend over ``idle_s`` (% of a core)."""
    tier_kib = 0
    for pid in cpu.lab_pids(state):
        cmdline = " ".join(proc.cmdline(pid))  # empty once it is gone
        if cpu.kind_of(cmdline) in kinds or also(cmdline):
            tier_kib += pss_kib(pid) or 0
    lab_kib = sum(memory_pss_kib(state).values())
    before = cpu.snapshot(state)
    time.sleep(idle_s)
    after = cpu.snapshot(state)
    idle = sum(after[k] - before[k] for k in kinds)
    return {
        "tier_pss_mib": round(tier_kib / 1024, 1),
        "lab_pss_mib": round(lab_kib / 1024, 1),
        # what the tier adds to the rest of the lab
        "tier_adds_pss_percent": (
            round(tier_kib * 100 / (lab_kib - tier_kib), 1) if lab_kib > tier_kib else None
        ),
        "tier_idle_cpu_percent": round(idle * 100 / idle_s, 2),
        **group_sizes(state),
    }


def group_sizes(state: LabState) -> dict[str, int]:
    """The instances of the app group and the back-office workers, as the supervisor
    last wrote them."""
    return {
        "app_instances": len(state.app_group().get("instances", [])),
        "backoffice_workers": len(state.backoffice_group().get("instances", [])),
    }


def wait_at_rest(topology: Topology, timeout_s: float = AT_REST_TIMEOUT_S) -> bool:
    """Until the app group is at its lab size and the back-office workers at theirs, with
    nothing terminating; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = LabState.load(topology.stack)
        app, workers = state.app_group(), state.backoffice_group()
        rest = state.endpoints.get("backoffice_desired")
        if (
            len(app.get("instances", [])) == topology.lab.app_instances
            and not app.get("terminating")
            and (rest is None or len(workers.get("instances", [])) == int(rest))
            and not workers.get("terminating")
        ):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(2.0)
