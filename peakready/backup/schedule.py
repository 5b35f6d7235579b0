"""Backup cadence for the lab, from the stack's ``backup`` settings.

``full_schedule`` drives pgBackRest full backups and ``incremental_schedule`` its
differential backups, the same settings that drive the AWS Backup plan. There is no
daemon: :func:`due_backups` says what is due in each repository and
:func:`run_due_backups` takes it (call it from cron, a loop, or before a drill).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from peakready.backup.pgbackrest import BackupInfo, PgBackRest
from peakready.cron import Cron
from peakready.topology import Topology


@dataclass(frozen=True)
class Due:
    repo: int
    type: str | None  # "full", "diff" or None when nothing is due
    reason: str
    next_full: datetime | None
    next_diff: datetime | None


def schedules(topology: Topology) -> tuple[Cron, Cron]:
    """The stack's full and differential schedules, parsed."""
    return (
        Cron.parse(topology.backup.full_schedule, "peakready:backup.full_schedule"),
        Cron.parse(topology.backup.incremental_schedule, "peakready:backup.incremental_schedule"),
    )


def due_for_repo(
    repo: int, backups: list[BackupInfo], full: Cron, diff: Cron, now: datetime
) -> Due:
    """What ``repo`` needs at ``now``, given its backups (any order)."""
    good = sorted((b for b in backups if b.repo == repo and not b.error), key=lambda b: b.stop)
    fulls = [b for b in good if b.type == "full"]
    if not fulls:
        return Due(repo, "full", "no full backup yet", None, None)
    last_full = datetime.fromtimestamp(fulls[-1].stop, UTC)
    last_any = datetime.fromtimestamp(good[-1].stop, UTC)
    next_full = full.next_after(last_full)
    next_diff = diff.next_after(last_any)
    if next_full is not None and next_full <= now:
        return Due(
            repo, "full", f"full was due {next_full:%Y-%m-%d %H:%M} UTC", next_full, next_diff
        )
    if next_diff is not None and next_diff <= now:
        return Due(
            repo, "diff", f"diff was due {next_diff:%Y-%m-%d %H:%M} UTC", next_full, next_diff
        )
    return Due(repo, None, "up to date", next_full, next_diff)


def due_backups(topology: Topology, pgbr: PgBackRest, now: datetime | None = None) -> list[Due]:
    full, diff = schedules(topology)
    now = now or datetime.now(UTC)
    backups = pgbr.backups()
    return [due_for_repo(repo, backups, full, diff, now) for repo in pgbr.repos]


def run_due_backups(
    topology: Topology, pgbr: PgBackRest, now: datetime | None = None, only_missing: bool = False
) -> list[dict[str, object]]:
    """Take every due backup; ``only_missing`` takes only first fulls (a new repository).

    Returns one record per backup taken: repo, type, seconds, ok, error.
    """
    taken: list[dict[str, object]] = []
    for due in due_backups(topology, pgbr, now):
        if due.type is None or (only_missing and due.reason != "no full backup yet"):
            continue
        done = pgbr.run(f"--type={due.type}", "backup", repo=due.repo, timeout=900)
        taken.append(
            {
                "repo": due.repo,
                "type": due.type,
                "why": due.reason,
                "seconds": round(done.seconds, 2),
                "ok": done.returncode == 0,
                "error": None if done.returncode == 0 else done.error_line,
            }
        )
    return taken
