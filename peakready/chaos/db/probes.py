"""Probes of the database tier."""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared
from peakready.load.records import read_events

__all__ = ["db_primary", "stale_primary_rejects_writes"]


def db_primary(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """``{"id", "az"}`` of the current database primary."""
    return shared.driver(configuration, secrets).db_primary()


def stale_primary_rejects_writes(
    member_id: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether the old primary (``member_id``; default: the one the last fault took
    down) refuses writes now that it is back: connected directly, a write must fail
    or find it read-only. ``True`` when no primary was taken down."""
    member = member_id or _failed_primary(configuration)
    if member is None:
        return True
    seen = shared.driver(configuration, secrets).stale_primary_rejects_writes(member)
    shared.record(configuration, "check", "stale_primary", **seen)
    if "ok" not in seen:
        raise ActivityFailed(f"stale primary check of {member}: no verdict in {seen}")
    return bool(seen["ok"])


# private


def _failed_primary(configuration: Configuration) -> str | None:
    for event in reversed(read_events(shared.run_dir(configuration))):
        if event.get("type") != "fault":
            continue
        if event["event"] == "fail_database_primary":
            return str(event["id"])
        if event["event"] == "power_off_az" and event.get("db_primary"):
            return str(event["db_primary"])
    return None
