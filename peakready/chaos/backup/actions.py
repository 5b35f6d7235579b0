"""Chaos Toolkit actions of the ``backup-restore`` scenario (lab target).

``peakready drill`` runs the same restore drill (:func:`peakready.backup.lab.run_backup_drill`)
and renders its summary; these make it available to any experiment.
"""

from __future__ import annotations

import json
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos.backup.shared import lab_of, run_dir_of
from peakready.errors import PeakreadyError

__all__ = ["restore_latest_backup"]


def restore_latest_backup(
    orders: int = 20, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Restore the latest backup of every pgBackRest repository to a point in time in a
    scratch PostgreSQL, verify it against the orders acknowledged before that point, and
    restore the Redis snapshot and rebuild the search index likewise. Returns the
    ``backup`` summary (RTO and RPO per repository); fails naming what is missing."""
    from peakready.backup.lab import run_backup_drill  # lazy: psycopg, pgBackRest reader

    if not 1 <= orders <= 1000:
        raise ActivityFailed(f"orders {orders}: expected 1 to 1000")
    topology, state = lab_of(configuration)
    work_dir = run_dir_of(configuration)
    try:
        summary = run_backup_drill(topology, state, work_dir, batch=orders).summary()
    except PeakreadyError as exc:
        raise ActivityFailed(f"backup drill: {exc}") from None
    (work_dir / "backup-summary.json").write_text(json.dumps(summary, indent=2))
    if not summary["passed"]:
        raise ActivityFailed("backup drill failed: " + " | ".join(summary["reasons"]))
    return summary
