"""The lab's backup drill: point-in-time restore from each repository, verified by counting.

:func:`run_backup_drill` does, against a running lab:

1. **As found** — reads each pgBackRest repository's newest backup and the source's
   archiver, and reports a policy breach when the newest recoverable point (backup
   stop time, extended by archived WAL that follows it without a gap) is older than
   the stack's ``backup-restore`` RPO. A repository without any backup gets a first
   full backup (a lab that just started).
2. **Orders** — places a first batch through the storefront (idempotency keys, ack
   times in a ledger), then reads the source's order and stock checksums just after the
   last acknowledgement, in a snapshot whose time is the recovery target, then places a second
   batch that the restore must *not* contain. Then ``pg_switch_wal()`` and
   ``pgbackrest check`` make sure the WAL is archived.
3. **Each repository in turn** — checks the backup's files against its manifest and
   the WAL archive for gaps, restores (``--repo=N --type=time``) into a scratch
   PostgreSQL on a free port (base+150…, archive_mode off, owned by postgres),
   waits for it to promote, and verifies: every acknowledged order before the target
   present, none after, checksums equal to the source's at the target. RTO is restore
   start → verified; RPO is the span of acknowledged orders missing. The scratch
   server is always torn down.
4. **Redis** — BGSAVE on the primary, the RDB restored into a scratch redis-server
   (base+151…), keys compared. **Search** — the catalogue rebuilt from the database
   into a scratch searchd (base+152…), document count compared, rebuild timed.
5. **Back office** (a stack with a queue tier) — a base backup of its database restored
   into a scratch PostgreSQL (base+153…), every acknowledged order of both batches
   counted there, shipped once (:mod:`peakready.backup.backoffice_restore`).

Nothing here trusts an exit code alone: pgBackRest's ``verify`` misses WAL gaps and a
"latest" restore with a gap comes up healthy with rows missing (LAB-NOTES).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from peakready.backup.backoffice_restore import drill_backoffice
from peakready.backup.lab_view import DATABASE, LabView, state_field
from peakready.backup.ledger import HttpOrderClient, Ledger, OrderClient, place_batch
from peakready.backup.pgbackrest import BackupInfo, Segment
from peakready.backup.redis_restore import drill_redis
from peakready.backup.results import BackupResult, Checksums, RepoResult, iso_time
from peakready.backup.rpo import SCENARIO, gap_text, rpo_policy
from peakready.backup.schedule import due_for_repo, run_due_backups, schedules
from peakready.backup.scratch import (
    ScratchPostgres,
    free_port,
    postgres_owned_dir,
    remove_tree,
)
from peakready.backup.search_rebuild import drill_search
from peakready.errors import PeakreadyError
from peakready.load import ledger as load_ledger
from peakready.topology import Topology
from peakready.verdict.restore import judge_restore

# --------------------------------------------------------------------------- the drill


def run_backup_drill(
    topology: Topology,
    state: Any,
    work_dir: Path,
    *,
    orders: OrderClient | None = None,
    batch: int = 20,
    after_target: int = 5,
    check_timeout_s: int = 30,
    redis_drill: bool = True,
    search_drill: bool = True,
    backoffice_drill: bool = True,
) -> BackupResult:
    """Run the whole backup drill against the lab described by ``state``.

    ``state`` is a :class:`peakready.lab.state.LabState` (anything with ``endpoints``
    and ``secrets()`` per docs/internals.md). ``orders`` defaults to the storefront's
    HTTP endpoint. Never raises for a failed restore: failures are in the result's
    reasons; raises :class:`PeakreadyError` only when the lab cannot be read at all.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    lab = LabView(topology, state)
    with _drill_lock(state_field(state, "lab_dir") or work_dir):
        return _run(
            topology,
            lab,
            work_dir,
            orders,
            batch,
            after_target,
            check_timeout_s,
            redis_drill,
            search_drill,
            backoffice_drill,
        )


def _run(
    topology: Topology,
    lab: LabView,
    work_dir: Path,
    orders: OrderClient | None,
    batch: int,
    after_target: int,
    check_timeout_s: int,
    redis_drill: bool,
    search_drill: bool,
    backoffice_drill: bool,
) -> BackupResult:
    result = BackupResult(started=iso_time(time.time()), work_dir=str(work_dir))
    objective = topology.objective(SCENARIO)
    ledger = Ledger()
    client = orders or HttpOrderClient(lab.endpoint)
    writer = load_ledger.LedgerWriter(work_dir / load_ledger.LEDGER_FILE)
    try:
        # 1. as found ------------------------------------------------------------
        archiver = lab.archiver()
        backups = lab.pgbr.backups()
        full, diff = schedules(topology)
        for repo in lab.pgbr.repos:
            policy = rpo_policy(lab.pgbr, repo, backups, archiver, objective, time.time())
            policy.schedule = due_for_repo(repo, backups, full, diff, datetime.now(UTC)).reason
            result.policy.append(policy)
        result.backups_taken = run_due_backups(topology, lab.pgbr, only_missing=True)
        for taken in result.backups_taken:
            if not taken["ok"]:
                result.reasons.append(
                    f"repo{taken['repo']}: first full backup failed: {taken['error']}"
                )

        # 2. orders, the recovery target, orders after it -----------------------
        product_ids = [int(p["id"]) for p in client.products() if int(p.get("stock", 0)) > 0]
        if not product_ids:
            raise PeakreadyError("backup drill: the storefront lists no product in stock")
        first = place_batch(client, ledger, "before", batch, product_ids, writer=writer)
        acked = [e for e in first if e.acknowledged]
        if not acked:
            result.reasons.append("no order of the first batch was acknowledged: nothing to verify")
            return result
        target_ts = max(e.acked for e in acked if e.acked is not None)
        time.sleep(0.02)  # the target lies strictly between the two batches
        expected, at = lab.source_checksums()
        target = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        result.target = target
        time.sleep(0.05)
        place_batch(client, ledger, "after", after_target, product_ids, writer=writer)
        result.orders_before_target = len(acked)
        result.orders_after_target = len(ledger.acked("after"))
        ledger.save(work_dir / "backup-ledger.json")
        switched = lab.switch_wal()
        check = lab.pgbr.run(
            f"--archive-timeout={check_timeout_s}", "check", timeout=check_timeout_s * 3
        )
        if check.returncode != 0:
            result.reasons.append(f"WAL archiving: pgbackrest check failed: {check.error_line}")

        # 3. each repository in turn ---------------------------------------------
        backups = lab.pgbr.backups()
        for repo in lab.pgbr.repos:
            result.repositories.append(
                _drill_repo(
                    lab,
                    repo,
                    backups,
                    target,
                    target_ts,
                    switched,
                    ledger,
                    expected,
                    objective.rto_s,
                    work_dir,
                )
            )

        # 4. cache and search ------------------------------------------------------
        if redis_drill and lab.redis_nodes:
            with _scratch("peakready-redis-") as scratch:
                result.redis = drill_redis(
                    lab.redis_nodes,
                    lab.secret("redis_password"),
                    scratch,
                    lab.ports(151),
                    ledger.run_id,
                )
        if search_drill:
            with _scratch("peakready-search-") as scratch:
                result.search = drill_search(
                    lab.source_conninfo(),
                    scratch,
                    lab.ports(152),
                    lab.search_index,
                    lab.binary("searchd"),
                )
        if backoffice_drill and "backoffice_db" in lab.endpoints:
            placed = ledger.as_load_entries("before") + ledger.as_load_entries("after")
            result.backoffice = drill_backoffice(lab.state, placed, lab.ports(153))
        return result
    except (psycopg.Error, httpx.HTTPError, OSError) as exc:
        line = (str(exc).strip().splitlines() or [""])[0][:300]
        result.reasons.append(f"backup drill stopped: {type(exc).__name__}: {line}")
        return result
    finally:
        if orders is None:
            client.close()
        writer.close()
        ledger.save(work_dir / "backup-ledger.json")
        result.finished = iso_time(time.time())


# --------------------------------------------------------------------------- one repository


def _drill_repo(
    lab: LabView,
    repo: int,
    backups: list[BackupInfo],
    target: str,
    target_ts: float,
    switched: str | None,
    ledger: Ledger,
    expected: Checksums,
    rto_objective: float,
    work_dir: Path,
) -> RepoResult:
    out = RepoResult(repo=repo, path=str(lab.pgbr.repo_paths[repo]))
    before = ledger.acked("before")
    out.missing_orders = len(before)
    candidates = [b for b in backups if b.repo == repo and not b.error and b.stop < target_ts]
    if not candidates:
        out.reason = "no backup in this repository finished before the recovery target"
        return out
    chosen = max(candidates, key=lambda b: b.stop)
    out.backup, out.backup_type, out.backup_stop = chosen.label, chosen.type, iso_time(chosen.stop)

    # what must be in the repository: the backup's files, WAL from its start onwards
    out.problems = lab.pgbr.check_backup_files(repo, chosen.label)
    archive = lab.pgbr.check_archive(repo, chosen.archive_start, switched)
    out.wal_segments_checked = (
        (Segment.parse(archive.last).position if archive.last else 0)  # type: ignore[union-attr]
        - Segment.parse(chosen.archive_start).position  # type: ignore[union-attr]
        + 1
        if archive.last
        else 0
    )
    if archive.missing:
        out.problems.append(gap_text(archive))
    elif archive.last is None:
        out.problems.append(f"WAL archive holds no segment from {chosen.archive_start} onwards")

    root = postgres_owned_dir(f"peakready-restore-repo{repo}-")
    data = root / "pgdata"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    scratch: ScratchPostgres | None = None
    started = time.monotonic()
    try:
        # a known-damaged backup cannot restore: do not wait out pgBackRest's retries
        retries = ["--job-retry=0"] if out.problems else []
        restore = lab.pgbr.run(
            *retries,
            f"--pg1-path={data}",
            "--type=time",
            f"--target={target}",
            "--target-action=promote",
            f"--set={chosen.label}",
            "restore",
            repo=repo,
            timeout=max(60, rto_objective),
        )
        out.restore_s = round(restore.seconds, 3)
        if restore.returncode != 0:
            out.reason = _with_problems(
                f"restore of backup {chosen.label} failed (exit {restore.returncode}): "
                + restore.error_line,
                out.problems,
            )
            return out
        out.port = free_port(lab.ports(150))
        scratch = ScratchPostgres(data, out.port, root / "postgres.log", lab.binary("postgres"))
        recovery_started = time.monotonic()
        scratch.start()
        failure = _wait_promoted(scratch, lab.superuser, timeout=max(30.0, rto_objective))
        out.recovery_s = round(time.monotonic() - recovery_started, 3)
        if failure:
            out.reason = _with_problems(failure, out.problems)
            _keep_log(scratch, work_dir / f"restore-repo{repo}-postgres.log")
            return out
        verify_started = time.monotonic()
        _verify(scratch, lab.superuser, out, ledger, expected, target_ts)
        out.verify_s = round(time.monotonic() - verify_started, 3)
        out.rto_s = round(time.monotonic() - started, 3)
        if out.problems and out.reason is None:
            out.reason = "restore verified but the repository is damaged: " + "; ".join(
                out.problems
            )
        out.passed = out.reason is None
        return out
    finally:
        if scratch is not None:
            scratch.stop()
        remove_tree(root)


def _verify(
    scratch: ScratchPostgres,
    user: str,
    out: RepoResult,
    ledger: Ledger,
    expected: Checksums,
    target_ts: float,
) -> None:
    """Count the restored orders against the ledger, then the checksums at the target."""
    before = ledger.acked("before")
    after = ledger.batch("after")
    keys = [e.key for e in before + after]
    with psycopg.connect(scratch.conninfo, user=user, dbname=DATABASE) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, id, product_id, quantity FROM orders"
            " WHERE idempotency_key = ANY(%s)",
            (keys,),
        ).fetchall()
        products = conn.execute(
            "SELECT p.id, p.stock, p.initial_stock, coalesce(sum(o.quantity), 0)"
            " FROM products p LEFT JOIN orders o ON o.product_id = p.id GROUP BY p.id"
        ).fetchall()
        restored = Checksums.read(conn)
    found = {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}
    restored_products = [
        {"id": p[0], "stock": p[1], "initial_stock": p[2], "sold": int(p[3])} for p in products
    ]
    verdict = judge_restore(before + after, found, restored_products, target_ts, exact_target=True)
    out.verified_orders = verdict.verified_orders
    out.missing_orders = verdict.missing_orders
    out.unexpected_orders = verdict.unexpected_orders
    # The load ledger's rule for oversold units (stock, sold and initial stock agree).
    out.oversold_units = load_ledger.compare([], {"products": restored_products}).oversold_units
    out.rpo_s = verdict.rpo_s
    diffs = "; ".join(restored.differences(expected))
    # One reason, the most telling first: lost orders, then orders that should not be
    # there, then a database that differs from the source, then stock.
    out.reason = (
        verdict.missing
        or verdict.unexpected
        or (f"checksums differ from the source at the target: {diffs}" if diffs else None)
        or verdict.stock
        or (f"{out.oversold_units} units oversold" if out.oversold_units else None)
    )


def _wait_promoted(scratch: ScratchPostgres, user: str, timeout: float) -> str | None:
    """None once the scratch server left recovery; else why it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scratch.exited():
            return _recovery_failure(scratch.log_tail(60))
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(scratch.conninfo, user=user, dbname="postgres") as conn,
        ):
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and row[0] is False:
                return None
        time.sleep(0.1)
    return f"scratch PostgreSQL still in recovery after {timeout:.0f} s"


def _recovery_failure(log: list[str]) -> str:
    text = "\n".join(log)
    missing = re.findall(r"unable to find ([0-9A-F]{24}) in the archive", text)
    if "recovery ended before configured recovery target was reached" in text:
        where = f"; last WAL segment not found in the archive: {missing[-1]}" if missing else ""
        return (
            "point-in-time recovery ended before the recovery target was reached: "
            f"WAL is missing from the archive{where}"
        )
    fatal = [ln for ln in log if "FATAL" in ln or "PANIC" in ln]
    return "scratch PostgreSQL exited during recovery: " + (
        fatal[-1].split("FATAL:", 1)[-1].strip() if fatal else (log[-1] if log else "no log")
    )


# --------------------------------------------------------------------------- policy


# private


@contextlib.contextmanager
def _drill_lock(folder: Any) -> Iterator[None]:
    """One backup drill per lab at a time: they share the scratch ports."""
    path = Path(folder) / "backup-drill.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PeakreadyError(f"another backup drill runs on this lab ({path})") from None
        yield


@contextlib.contextmanager
def _scratch(prefix: str) -> Any:
    path = postgres_owned_dir(prefix)
    try:
        yield path
    finally:
        remove_tree(path)


def _with_problems(reason: str, problems: list[str]) -> str:
    return reason + ("; " + "; ".join(problems) if problems else "")


def _keep_log(scratch: ScratchPostgres, dest: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.copyfile(scratch.log, dest)
