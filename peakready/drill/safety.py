"""DESIGN §9: what a drill refuses to do, checked before anything runs."""

from __future__ import annotations

from datetime import UTC, datetime

from peakready.errors import PeakreadyError
from peakready.topology import SCENARIOS, Topology


def check(
    topology: Topology, dry_run: bool, allow_protected: bool, now: datetime | None = None
) -> None:
    """Raise :class:`PeakreadyError` when a destructive drill must not run now.

    A dry run (probes only, no fault) is always allowed: it changes nothing.
    """
    if dry_run:
        return
    if topology.protected and not allow_protected:
        raise PeakreadyError(
            f"stack {topology.stack} is protected: refusing a destructive drill "
            "(use --dry-run, or --allow-protected if you really mean it)"
        )
    moment = now or datetime.now(UTC)
    window = topology.freeze_at(moment)
    if window is not None:
        raise PeakreadyError(
            f"stack {topology.stack} is in a freeze window ({window.reason}, "
            f"{window.start_utc.isoformat()} to {window.end_utc.isoformat()}): "
            "refusing a destructive drill (--dry-run still runs probes)"
        )


def choose(scenarios: list[str] | None) -> list[str]:
    """The scenarios to run, validated, in DESIGN §6 order (default: all)."""
    if not scenarios:
        return list(SCENARIOS)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise PeakreadyError(f"--scenario {unknown[0]!r}: expected one of {', '.join(SCENARIOS)}")
    return [s for s in SCENARIOS if s in scenarios]
