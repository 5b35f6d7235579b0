"""The RPO policy of the lab's repositories: how old the newest recoverable point is.

Per repository, the newest recoverable point is the newest backup's stop time, extended
to *now* while ``pg_stat_archiver`` shows no failure since the last success and the
repository holds every WAL segment from that backup's start up to the archiver's last
one (else to the mtime of the last segment before the first gap).
"""

from __future__ import annotations

import time
from typing import Any

from peakready.backup.lab_view import LabView
from peakready.backup.pgbackrest import ArchiveCheck, BackupInfo, PgBackRest, Segment
from peakready.backup.results import Policy, iso_time
from peakready.topology import Topology

SCENARIO = "backup-restore"


def recoverable_points(topology: Topology, state: Any, now: float | None = None) -> list[Policy]:
    """Per repository, the newest recoverable point against the stack's RPO (restores
    nothing): its newest backup, extended by archived WAL without a gap while archiving
    keeps up."""
    lab = LabView(topology, state)
    backups = lab.pgbr.backups()
    archiver = lab.archiver()
    objective = topology.objective(SCENARIO)
    at = time.time() if now is None else now
    return [rpo_policy(lab.pgbr, r, backups, archiver, objective, at) for r in lab.pgbr.repos]


def rpo_policy(
    pgbr: PgBackRest,
    repo: int,
    backups: list[BackupInfo],
    archiver: dict[str, Any],
    objective: Any,
    now: float,
) -> Policy:
    mine = [b for b in backups if b.repo == repo and not b.error]
    if not mine:
        return Policy(repo, objective.rpo_s, objective.rto_s, None, None, None, None)
    newest = max(mine, key=lambda b: b.stop)
    archive = pgbr.check_archive(repo, newest.archive_start)
    covered = covered_until(newest, archive, archiver, now)
    exposure = max(0.0, now - covered)
    breach = None
    if exposure > objective.rpo_s:
        wal = (
            f"archived WAL reaches only {iso_time(covered)}"
            if covered > newest.stop
            else "no archived WAL extends it"
        )
        if archive.missing:
            wal += f" ({gap_text(archive)})"
        if archiver.get("failing"):
            wal += (
                f"; WAL archiving failing since {archiver['last_failed_time']}"
                f" ({archiver['last_failed_wal']})"
            )
        breach = (
            f"repo{repo}: RPO policy breach: newest backup {newest.label} finished "
            f"{now - newest.stop:.0f} s ago and {wal}; newest recoverable point is "
            f"{exposure:.0f} s old, the stack allows {objective.rpo_s:g} s"
        )
    note = None
    if breach is None and now - newest.stop > objective.rpo_s:
        note = (
            f"newest backup {newest.label} is {now - newest.stop:.0f} s old (RPO"
            f" {objective.rpo_s:g} s); archived WAL without a gap covers the rest"
        )
    return Policy(
        repo,
        objective.rpo_s,
        objective.rto_s,
        round(now - newest.stop, 1),
        iso_time(covered),
        round(exposure, 1),
        breach,
        note,
    )


def covered_until(
    newest: BackupInfo, archive: ArchiveCheck, archiver: dict[str, Any], now: float
) -> float:
    """Latest moment a restore from this repository can reach, as far as we can tell."""
    covered = newest.stop
    if archive.last_contiguous_mtime is not None:
        covered = max(covered, archive.last_contiguous_mtime)
    last_wal = archiver.get("last_archived_wal")
    in_repo = Segment.parse(archive.last_contiguous) if archive.last_contiguous else None
    needed = Segment.parse(last_wal) if last_wal else None
    healthy = not archiver.get("failing") and not archive.missing
    if healthy and (
        needed is None or (in_repo is not None and in_repo.position >= needed.position)
    ):
        covered = now  # archiving keeps up and this repository holds all of it
    return covered


def gap_text(archive: ArchiveCheck) -> str:
    shown = ", ".join(archive.missing[:3]) + (" …" if len(archive.missing) > 3 else "")
    return f"WAL gap: {len(archive.missing)} segment(s) missing from the archive: {shown}" + (
        f" (archive runs from {archive.first} to {archive.last})"
        if archive.last
        else f" (nothing archived from {archive.first} onwards)"
    )


# --------------------------------------------------------------------------- the lab, as read
