"""What one tier of the lab costs (``make bench`` phases ``pipeline`` and ``monitoring``).

The tier's processes are picked by their kind (``peakready.bench.cpu.kind_of``): their
PSS beside the whole lab's, and the CPU they spend over a quiet interval, as a share of
one core. The lab has 2 cores, so a tier's idle share is what it takes from every drill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import peakready.bench.cpu as cpu
from peakready.lab import proc
from peakready.lab.observe import memory_pss_kib, pss_kib
from peakready.lab.state import LabState


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
    }
