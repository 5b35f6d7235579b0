"""Chaos Toolkit probes of the ``backup-restore`` scenario (lab target)."""

from __future__ import annotations

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos.backup.shared import lab_of
from peakready.errors import PeakreadyError

__all__ = ["recoverable_within_rpo"]


def recoverable_within_rpo(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """True when every pgBackRest repository can restore to a point no older than the
    stack's ``backup-restore`` RPO: its newest backup, extended by archived WAL without a
    gap while archiving keeps up. Restores nothing."""
    from peakready.backup.rpo import recoverable_points  # lazy: the pgBackRest reader

    topology, state = lab_of(configuration)
    try:
        policies = recoverable_points(topology, state)
    except PeakreadyError as exc:
        raise ActivityFailed(f"backup repositories: {exc}") from None
    return all(p.breach is None and p.backup_age_s is not None for p in policies)
