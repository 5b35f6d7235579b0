"""The back office's database: a base backup, restored into a scratch server, counted
against the drill's ledger (the ``backoffice`` section of the backup summary).

The drill's acknowledged orders are first waited for in the back office (its
``POST /audit``, as the drills' delivery check asks it). Then ``pg_basebackup``
writes a compressed tar backup of the back office's primary (WAL streamed with it), the
tar files are unpacked into a fresh directory, a scratch PostgreSQL starts on it, and
every acknowledged order must be there, applied once (one shipment). The back office
is not the shop's primary and has no pgBackRest stanza of its own in the lab: on AWS
it is an RDS instance whose snapshots the AWS restore check covers.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from peakready.backup.scratch import ScratchPostgres, free_port, postgres_owned_dir, remove_tree
from peakready.lab import proc
from peakready.lab.components.backoffice import DB_NAME, PRIMARY, pg_basebackup
from peakready.load.ledger import LedgerEntry, compare_deliveries

APPLIED_SQL = (
    "SELECT a.order_id, count(s.id) FROM applied_orders a"
    " LEFT JOIN shipments s ON s.order_id = a.order_id"
    " WHERE a.order_id = ANY(%s) GROUP BY a.order_id"
)


def drill_backoffice(
    state: Any,
    entries: list[LedgerEntry],
    ports: range,
    wait_s: float = 60.0,
) -> dict[str, Any]:
    """Back up, restore and count; the ``backoffice`` section of the backup summary."""
    ids = [e.order_id for e in entries]
    result: dict[str, Any] = {
        "passed": False,
        "reason": None,
        "expected_orders": len(ids),
        "delivered_orders": 0,
        "verified_orders": 0,
        "missing_orders": len(ids),
        "applied_twice": 0,
        "backup_s": None,
        "restore_s": None,
        "rto_s": None,
    }
    delivered = _wait_delivered(state, entries, wait_s)
    result["delivered_orders"] = delivered
    source = state.endpoints["backoffice_db"]
    binaries = Path(state.process(PRIMARY)["cmd"][0]).parent
    secret = state.secrets()["backoffice_db_superuser_password"]
    root = postgres_owned_dir("peakready-backoffice-")
    backup, data = root / "backup", root / "pgdata"
    scratch: ScratchPostgres | None = None
    try:
        started = time.monotonic()
        done = pg_basebackup(
            binaries, int(source["port"]), secret, root / "pgpass", backup, "-F", "tar", "-z"
        )
        result["backup_s"] = round(time.monotonic() - started, 3)
        if done.returncode != 0:
            result["reason"] = f"back office: pg_basebackup failed: {done.stderr.strip()[-300:]}"
            return result
        restore_started = time.monotonic()
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres", "postgres")
        for tar, into in (("base.tar.gz", data), ("pg_wal.tar.gz", data / "pg_wal")):
            unpacked = proc.run_as_postgres(["tar", "-xzf", str(backup / tar), "-C", str(into)])
            if unpacked.returncode != 0:
                result["reason"] = f"back office: {tar} does not unpack: {unpacked.stderr[-200:]}"
                return result
        scratch = ScratchPostgres(
            data, free_port(ports), root / "postgres.log", str(binaries / "postgres")
        )
        scratch.start()
        rows = _applied(scratch, ids, timeout_s=60.0)
        result["restore_s"] = round(time.monotonic() - restore_started, 3)
        result["rto_s"] = round(time.monotonic() - started, 3)
        if rows is None:
            tail = "; ".join(scratch.log_tail(3))
            result["reason"] = f"back office: the restored database did not open: {tail}"
            return result
    finally:
        if scratch is not None:
            scratch.stop()
        remove_tree(root)
    return _judge(result, ids, rows, delivered)


def _judge(
    result: dict[str, Any], ids: list[int], rows: dict[int, int], delivered: int
) -> dict[str, Any]:
    missing = [i for i in ids if i not in rows]
    twice = sorted(i for i, shipments in rows.items() if shipments > 1)
    result.update(
        verified_orders=len(ids) - len(missing),
        missing_orders=len(missing),
        applied_twice=len(twice),
        passed=not missing and not twice,
    )
    if missing:
        where = "" if delivered == len(ids) else f" ({len(ids) - delivered} never delivered)"
        result["reason"] = (
            f"back office: {len(missing)} of {len(ids)} acknowledged orders missing from the"
            f" restored database{where}: {', '.join(map(str, missing[:10]))}"
        )
    elif twice:
        result["reason"] = (
            f"back office: {len(twice)} orders shipped more than once in the restored"
            f" database: {', '.join(map(str, twice[:10]))}"
        )
    return result


def _wait_delivered(state: Any, entries: list[LedgerEntry], wait_s: float) -> int:
    """Until the back office applied every entry (bounded); how many it had."""
    url = f"{state.outputs['backoffice_endpoint']}/audit"
    headers = {"Authorization": f"Bearer {state.secrets()['audit_token']}"}
    ids = [e.order_id for e in entries]
    deadline = time.monotonic() + wait_s
    delivered = 0
    while True:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            answer = httpx.post(url, json={"order_ids": ids}, headers=headers, timeout=10)
            if answer.status_code == 200:
                check = compare_deliveries(entries, answer.json(), 0)
                delivered = check.delivered_orders
        if delivered == len(ids) or time.monotonic() > deadline:
            return delivered
        time.sleep(0.5)


def _applied(scratch: ScratchPostgres, ids: list[int], timeout_s: float) -> dict[int, int] | None:
    """Shipments per applied order among ``ids`` once the scratch server opens; None if
    it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not scratch.exited():
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(scratch.conninfo, user="postgres", dbname=DB_NAME) as conn,
        ):
            return {int(r[0]): int(r[1]) for r in conn.execute(APPLIED_SQL, (ids,))}
        time.sleep(0.2)
    return None
