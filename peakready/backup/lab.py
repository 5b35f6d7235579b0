"""The lab's backup drill: point-in-time restore from each repository, verified by counting.

:func:`run_backup_drill` does, against a running lab:

1. **As found** — reads each pgBackRest repository's newest backup and the source's
   archiver, and reports a policy breach when the newest recoverable point (backup
   stop time, extended by archived WAL that follows it without a gap) is older than
   the stack's ``backup-restore`` RPO. A repository without any backup gets a first
   full backup (a lab that just started).
2. **Orders** — places a first batch through the storefront (idempotency keys, ack
   times in a ledger), marks the recovery target just after the last acknowledgement,
   reads the source's order and stock checksums at that point, then places a second
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from peakready.backup.ledger import HttpOrderClient, Ledger, LedgerEntry, OrderClient, place_batch
from peakready.backup.pgbackrest import ArchiveCheck, BackupInfo, PgBackRest, Segment
from peakready.backup.redis_restore import drill_redis
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

SCENARIO = "backup-restore"
DATABASE = "shop"

ORDERS_SQL = """
SELECT count(*), coalesce(max(id), 0), coalesce(sum(quantity), 0),
       coalesce(md5(string_agg(id::text || ':' || idempotency_key || ':' || product_id::text
                               || ':' || quantity::text, ',' ORDER BY id)), '')
FROM orders
"""
PRODUCTS_SQL = """
SELECT count(*), coalesce(sum(p.stock), 0),
       coalesce(md5(string_agg(p.id::text || ':' || p.stock::text, ',' ORDER BY p.id)), ''),
       count(*) FILTER (WHERE p.initial_stock - p.stock <> coalesce(s.sold, 0))
FROM products p
LEFT JOIN (SELECT product_id, sum(quantity) AS sold FROM orders GROUP BY product_id) s
       ON s.product_id = p.id
"""


@dataclass
class Checksums:
    orders: int
    max_order_id: int
    units: int
    orders_md5: str
    products: int
    stock: int
    stock_md5: str
    inconsistent_products: int  # initial_stock - stock != units sold

    @classmethod
    def read(cls, conn: psycopg.Connection[Any]) -> Checksums:
        o = conn.execute(ORDERS_SQL).fetchone()
        p = conn.execute(PRODUCTS_SQL).fetchone()
        assert o is not None and p is not None
        return cls(
            int(o[0]), int(o[1]), int(o[2]), str(o[3]), int(p[0]), int(p[1]), str(p[2]), int(p[3])
        )

    def differences(self, expected: Checksums) -> list[str]:
        out = []
        for name, value in asdict(self).items():
            want = getattr(expected, name)
            if value != want:
                out.append(f"{name} {value} (source at target: {want})")
        return out


@dataclass
class RepoResult:
    repo: int
    path: str
    backup: str | None = None
    backup_type: str | None = None
    backup_stop: str | None = None
    passed: bool = False
    reason: str | None = None
    rto_s: float | None = None
    rpo_s: float | None = None
    verified_orders: int = 0
    missing_orders: int = 0
    unexpected_orders: int = 0
    oversold_units: int = 0
    restore_s: float | None = None
    recovery_s: float | None = None
    verify_s: float | None = None
    wal_segments_checked: int = 0
    port: int | None = None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "path": self.path,
            "backup": self.backup,
            "backup_type": self.backup_type,
            "backup_stop": self.backup_stop,
            "rto_s": self.rto_s,
            "rpo_s": self.rpo_s,
            "verified_orders": self.verified_orders,
            "missing_orders": self.missing_orders,
            "unexpected_orders": self.unexpected_orders,
            "oversold_units": self.oversold_units,
            "restore_s": self.restore_s,
            "recovery_s": self.recovery_s,
            "verify_s": self.verify_s,
            "wal_segments_checked": self.wal_segments_checked,
            "port": self.port,
            "passed": self.passed,
            "reason": self.reason,
            "problems": self.problems,
        }


@dataclass
class Policy:
    """The stack's objective against what the repositories held when the drill began."""

    repo: int
    rpo_s: float
    rto_s: float
    backup_age_s: float | None
    recoverable_until: str | None
    exposure_s: float | None
    breach: str | None
    note: str | None = None
    schedule: str | None = None  # what the stack's cadence says is due in this repository

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BackupResult:
    started: str
    finished: str = ""
    target: str | None = None
    repositories: list[RepoResult] = field(default_factory=list)
    policy: list[Policy] = field(default_factory=list)
    redis: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    backups_taken: list[dict[str, Any]] = field(default_factory=list)
    orders_before_target: int = 0
    orders_after_target: int = 0
    work_dir: str = ""

    @property
    def passed(self) -> bool:
        return not self.all_reasons() and bool(self.repositories)

    def all_reasons(self) -> list[str]:
        reasons = list(self.reasons)
        reasons += [p.breach for p in self.policy if p.breach]
        reasons += [f"repo{r.repo}: {r.reason}" for r in self.repositories if not r.passed]
        for part in (self.redis, self.search):
            if part and not part.get("passed") and part.get("reason"):
                reasons.append(str(part["reason"]))
        return reasons

    @property
    def backup_age_s(self) -> float | None:
        ages = [p.backup_age_s for p in self.policy if p.backup_age_s is not None]
        return round(min(ages), 1) if ages else None

    def summary(self) -> dict[str, Any]:
        """The ``backup`` section of summary.json (DESIGN §7), worst repository first."""
        repos = self.repositories
        rtos = [r.rto_s for r in repos]
        rpos = [r.rpo_s for r in repos]
        return {
            "rto_s": None if not repos or None in rtos else max(x for x in rtos if x is not None),
            "rpo_s": None if not repos or None in rpos else max(x for x in rpos if x is not None),
            "verified_orders": min((r.verified_orders for r in repos), default=0),
            "missing_orders": max((r.missing_orders for r in repos), default=0),
            "passed": self.passed,
            "reasons": self.all_reasons(),
            "backup_age_s": self.backup_age_s,
            "target": self.target,
            "orders_before_target": self.orders_before_target,
            "orders_after_target": self.orders_after_target,
            "repositories": [r.summary() for r in repos],
            "policy": [p.summary() for p in self.policy],
            "backups_taken": self.backups_taken,
            "redis": self.redis,
            "search": self.search,
            "started": self.started,
            "finished": self.finished,
        }


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
) -> BackupResult:
    """Run the whole backup drill against the lab described by ``state``.

    ``state`` is a :class:`peakready.lab.state.LabState` (anything with ``endpoints``
    and ``secrets()`` per docs/internals.md). ``orders`` defaults to the storefront's
    HTTP endpoint. Never raises for a failed restore: failures are in the result's
    reasons; raises :class:`PeakreadyError` only when the lab cannot be read at all.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    lab = _LabView(topology, state)
    with _drill_lock(_get(state, "lab_dir") or work_dir):
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
        )


def recoverable_points(topology: Topology, state: Any, now: float | None = None) -> list[Policy]:
    """Per repository, the newest recoverable point against the stack's RPO (restores
    nothing): its newest backup, extended by archived WAL without a gap while archiving
    keeps up."""
    lab = _LabView(topology, state)
    backups = lab.pgbr.backups()
    archiver = lab.archiver()
    objective = topology.objective(SCENARIO)
    at = time.time() if now is None else now
    return [_policy(lab.pgbr, r, backups, archiver, objective, at) for r in lab.pgbr.repos]


def _run(
    topology: Topology,
    lab: _LabView,
    work_dir: Path,
    orders: OrderClient | None,
    batch: int,
    after_target: int,
    check_timeout_s: int,
    redis_drill: bool,
    search_drill: bool,
) -> BackupResult:
    result = BackupResult(started=_iso(time.time()), work_dir=str(work_dir))
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
            policy = _policy(lab.pgbr, repo, backups, archiver, objective, time.time())
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
        expected = lab.source_checksums()
        target = _pg_time(target_ts + 0.01)
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
        result.finished = _iso(time.time())


# --------------------------------------------------------------------------- one repository


def _drill_repo(
    lab: _LabView,
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
    out.backup, out.backup_type, out.backup_stop = chosen.label, chosen.type, _iso(chosen.stop)

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
        out.problems.append(_gap_text(archive))
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
        or (
            "checksums differ from the source at the target: " + "; ".join(diffs) if diffs else None
        )
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


def _policy(
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
    covered = _covered_until(newest, archive, archiver, now)
    exposure = max(0.0, now - covered)
    breach = None
    if exposure > objective.rpo_s:
        wal = (
            f"archived WAL reaches only {_iso(covered)}"
            if covered > newest.stop
            else "no archived WAL extends it"
        )
        if archive.missing:
            wal += f" ({_gap_text(archive)})"
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
        _iso(covered),
        round(exposure, 1),
        breach,
        note,
    )


def _covered_until(
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


def _gap_text(archive: ArchiveCheck) -> str:
    shown = ", ".join(archive.missing[:3]) + (" …" if len(archive.missing) > 3 else "")
    return f"WAL gap: {len(archive.missing)} segment(s) missing from the archive: {shown}" + (
        f" (archive runs from {archive.first} to {archive.last})"
        if archive.last
        else f" (nothing archived from {archive.first} onwards)"
    )


# --------------------------------------------------------------------------- the lab, as read


class _LabView:
    """What the drill needs from the lab's state (docs/internals.md), in one place."""

    def __init__(self, topology: Topology, state: Any) -> None:
        self.topology = topology
        self.state = state
        self.endpoints: dict[str, Any] = dict(_get(state, "endpoints") or {})
        try:
            pgbr = self.endpoints["pgbackrest"]
            self.pgbr = PgBackRest(Path(pgbr["config"]), pgbr["stanza"], self.binary("pgbackrest"))
            self.db = self.endpoints["db_write"]
        except (KeyError, TypeError) as exc:
            raise PeakreadyError(
                f"lab state: endpoints.{exc.args[0]} missing; is the lab up?"
            ) from None
        self.endpoint = str(self.endpoints.get("http", ""))
        self.redis_nodes: list[dict[str, Any]] = list(self.endpoints.get("redis") or [])
        self.search_index = str(
            self.endpoints.get("search_rt_index")
            or self.endpoints.get("search_index")
            or "products"
        )
        base = _get(state, "port_base") or os.environ.get("PEAKREADY_LAB_PORT_BASE")
        self.port_base = int(base) if base else topology.lab.port_base
        self._secrets: dict[str, Any] = dict(state.secrets())
        self.superuser = str(self.endpoints.get("db_superuser", "postgres"))

    def secret(self, name: str) -> str | None:
        value = self._secrets.get(name)
        return str(value) if value is not None else None

    def binary(self, name: str) -> str:
        return self.topology.lab.binaries.get(name, name)  # type: ignore[call-overload, no-any-return]

    def ports(self, first_offset: int) -> range:
        return range(self.port_base + first_offset, self.port_base + 160)

    def source_conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.db["host"],
            port=int(self.db["port"]),
            user=self.superuser,
            password=self.secret("db_superuser_password") or "",
            dbname=DATABASE,
            connect_timeout=5,
        )

    def source_checksums(self) -> Checksums:
        with psycopg.connect(self.source_conninfo()) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return Checksums.read(conn)

    def switch_wal(self) -> str | None:
        """``pg_switch_wal()``; the name of the segment it closed."""
        with psycopg.connect(self.source_conninfo(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        return str(row[0]) if row else None

    def archiver(self) -> dict[str, Any]:
        with psycopg.connect(self.source_conninfo(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT last_archived_wal, last_archived_time, last_failed_wal, last_failed_time"
                " FROM pg_stat_archiver"
            ).fetchone()
        assert row is not None
        failing = row[3] is not None and (row[1] is None or row[3] > row[1])
        return {
            "last_archived_wal": row[0],
            "last_archived_time": row[1].isoformat() if row[1] else None,
            "last_failed_wal": row[2],
            "last_failed_time": row[3].isoformat() if row[3] else None,
            "failing": failing,
        }


def lab_pgbackrest(topology: Topology, state: Any) -> PgBackRest:
    """The lab's pgBackRest stanza, as recorded in its state."""
    return _LabView(topology, state).pgbr


# private


def _get(state: Any, name: str) -> Any:
    if isinstance(state, dict):
        return state.get(name)
    return getattr(state, name, None)


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


def _acked(entry: LedgerEntry) -> float:
    return entry.acked if entry.acked is not None else entry.sent


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _pg_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _with_problems(reason: str, problems: list[str]) -> str:
    return reason + ("; " + "; ".join(problems) if problems else "")


def _keep_log(scratch: ScratchPostgres, dest: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.copyfile(scratch.log, dest)
