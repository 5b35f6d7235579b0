"""Chaos Toolkit extension: target-neutral actions and probes per tier.

Each tier has its folder (``app``, ``az``, ``db``, ``cache``, ``search``, ``stack``,
``verify``) with ``actions.py`` and/or ``probes.py``; ``load.control`` is the control
that keeps order load flowing around an experiment. Activities dispatch on the
configuration key ``peakready_target`` to the lab driver or the AWS driver.
"""

from __future__ import annotations

from chaoslib.discovery.discover import (
    discover_actions,
    discover_probes,
    initialize_discovery_result,
)
from chaoslib.types import DiscoveredActivities, Discovery

__version__ = "0.1.0"
__all__ = ["discover"]

ACTIONS = ("app", "az", "db", "cache", "search", "stack", "backup", "aws")
PROBES = ("app", "cache", "db", "stack", "verify", "backup", "aws")


def discover(discover_system: bool = True) -> Discovery:
    """What this extension offers to ``chaos discover peakready``."""
    discovery = initialize_discovery_result("peakready", __version__, "peakready")
    discovery["activities"].extend(load_exported_activities())
    return discovery


def load_exported_activities() -> list[DiscoveredActivities]:
    activities: list[DiscoveredActivities] = []
    for tier in ACTIONS:
        activities.extend(discover_actions(f"peakready.chaos.{tier}.actions"))
    for tier in PROBES:
        activities.extend(discover_probes(f"peakready.chaos.{tier}.probes"))
    return activities
