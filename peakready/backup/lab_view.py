"""What the backup drill needs from a running lab's state (docs/internals.md), in one place."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from peakready.backup.pgbackrest import PgBackRest
from peakready.backup.results import Checksums
from peakready.errors import PeakreadyError
from peakready.lab.components.database import DATABASE
from peakready.topology import Topology


class LabView:
    """What the drill needs from the lab's state (docs/internals.md), in one place."""

    def __init__(self, topology: Topology, state: Any) -> None:
        self.topology = topology
        self.state = state
        self.endpoints: dict[str, Any] = dict(state_field(state, "endpoints") or {})
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
        base = state_field(state, "port_base") or os.environ.get("PEAKREADY_LAB_PORT_BASE")
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

    def source_checksums(self) -> tuple[Checksums, datetime]:
        """The source's checksums and the moment they hold for, while others write (the
        checkout probe, a drill's load).

        A commit's WAL timestamp precedes the moment it becomes visible (by a WAL
        flush, a sync standby's answer), so a snapshot alone can miss a commit that a
        restore to its time replays. A SHARE lock on both tables waits until every
        writer in flight finished and holds the next ones back for the few
        milliseconds of the reads: every commit older than the time read here is in
        the snapshot, and every later one is later than it."""
        with psycopg.connect(self.source_conninfo()) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.execute("SET LOCAL lock_timeout = '10s'")
            conn.execute("LOCK TABLE orders, products IN SHARE MODE")
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            return Checksums.read(conn), row[0]

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
    return LabView(topology, state).pgbr


def state_field(state: Any, name: str) -> Any:
    if isinstance(state, dict):
        return state.get(name)
    return getattr(state, name, None)
