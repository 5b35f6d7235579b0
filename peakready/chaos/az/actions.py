"""Power loss of an availability zone, and its return."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared
from peakready.load.records import read_events

__all__ = ["power_off_az", "power_on_az"]


def power_off_az(
    az: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Every component in ``az`` stops at once (lab: cgroup freeze; AWS: FIS power
    interruption). Default: the AZ of the current database primary, the worst case.

    Returns ``{"az", "db_primary"}``: the AZ and the primary it held (if any).
    """
    drv = shared.driver(configuration, secrets)
    primary = drv.db_primary()
    chosen = az or str(primary["az"])
    done = drv.power_off_az(chosen)
    result = {
        **done,
        "az": chosen,
        "db_primary": primary["id"] if primary["az"] == chosen else None,
    }
    shared.record(configuration, "fault", "power_off_az", **result)
    return result


def power_on_az(
    az: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Power ``az`` back on (lab: thaw). Default: the AZ the last power loss hit.
    Idempotent: powering on a running AZ does nothing."""
    chosen = az or _last_powered_off(configuration)
    if chosen is None:
        return {"az": None, "powered_on": False}
    done = shared.driver(configuration, secrets).power_on_az(chosen)
    shared.record(configuration, "recovery", "power_on_az", az=chosen)
    return {**done, "az": chosen, "powered_on": True}


# private


def _last_powered_off(configuration: Configuration) -> str | None:

    events = [e for e in read_events(shared.run_dir(configuration)) if e["event"] == "power_off_az"]
    return str(events[-1]["az"]) if events else None
