"""Chaos Toolkit activities of the ``backup-restore`` scenario (lab target).

``chaos/backup-restore.yaml`` uses them; ``peakready drill`` calls
:func:`peakready.backup.lab.run_backup_drill` directly and renders the same summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution
from chaoslib.types import Configuration, Secrets

from peakready.errors import PeakreadyError

__all__ = ["recoverable_within_rpo", "restore_latest_backup"]


def restore_latest_backup(
    orders: int = 20, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Restore the latest backup of every pgBackRest repository to a point in time in a
    scratch PostgreSQL, verify it against the orders acknowledged before that point, and
    restore the Redis snapshot and rebuild the search index likewise. Returns the
    ``backup`` summary (RTO and RPO per repository); fails naming what is missing."""
    from peakready.backup.lab import run_backup_drill

    if not 1 <= orders <= 1000:
        raise ActivityFailed(f"orders {orders}: expected 1 to 1000")
    topology, state = _lab(configuration)
    work_dir = _run_dir(configuration)
    try:
        summary = run_backup_drill(topology, state, work_dir, batch=orders).summary()
    except PeakreadyError as exc:
        raise ActivityFailed(f"backup drill: {exc}") from None
    (work_dir / "backup-summary.json").write_text(json.dumps(summary, indent=2))
    if not summary["passed"]:
        raise ActivityFailed("backup drill failed: " + " | ".join(summary["reasons"]))
    return summary


def recoverable_within_rpo(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """True when every pgBackRest repository can restore to a point no older than the
    stack's ``backup-restore`` RPO: its newest backup, extended by archived WAL without a
    gap while archiving keeps up. Restores nothing."""
    from peakready.backup.lab import SCENARIO, _LabView, _policy

    topology, state = _lab(configuration)
    try:
        lab = _LabView(topology, state)
        backups = lab.pgbr.backups()
        archiver = lab.archiver()
    except PeakreadyError as exc:
        raise ActivityFailed(f"backup repositories: {exc}") from None
    objective = topology.objective(SCENARIO)
    now = time.time()
    policies = [_policy(lab.pgbr, r, backups, archiver, objective, now) for r in lab.pgbr.repos]
    return all(p.breach is None and p.backup_age_s is not None for p in policies)


# private


def _lab(configuration: Configuration) -> tuple[Any, Any]:
    from peakready.lab.state import LabState
    from peakready.topology import Topology

    config = configuration or {}
    if str(config.get("peakready_target") or "lab") != "lab":
        raise InterruptExecution("backup-restore: this experiment drills the lab target only")
    stack = str(config.get("peakready_stack") or "dev")
    try:
        return Topology.load(stack), LabState.load(stack)
    except PeakreadyError as exc:
        raise InterruptExecution(f"backup-restore: {exc}") from None


def _run_dir(configuration: Configuration) -> Path:
    from peakready.topology import REPO_ROOT

    given = str((configuration or {}).get("peakready_run_dir") or "")
    path = Path(given) if given else REPO_ROOT / ".lab" / "runs" / "backup-restore"
    path.mkdir(parents=True, exist_ok=True)
    return path
