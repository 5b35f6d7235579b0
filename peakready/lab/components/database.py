"""The database: PostgreSQL 15 under Patroni, one member per AZ, synchronous mode.

Patroni starts once etcd is healthy; when a leader is elected, ``up`` creates the shop's
role and database on it (commits wait for the synchronous standby).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from peakready.lab import observe
from peakready.lab import proc as procmod
from peakready.lab.components.backup import STANZA
from peakready.lab.components.base import (
    Component,
    ProcessSpec,
    Row,
    Targets,
    UpContext,
    Wave,
)

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState

DATABASE, DB_USER = "shop", "shop"


class Database(Component):
    kind = "patroni"
    after = ("etcd",)
    role = "patroni"
    binaries: ClassVar[dict[str, str]] = {
        "patroni": "PyPI patroni[etcd3,psycopg3] in .venv (make setup)",
        "postgres": "Debian package postgresql-15",
        "setpriv": "Debian package util-linux",
    }
    secret_keys = (
        "db_superuser_password",
        "db_replication_password",
        "db_app_password",
        "patroni_restapi_password",
    )

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        specs = []
        for i, az in enumerate(plan.azs):
            config = plan.lab / "patroni" / f"{az}.yml"
            specs.append(
                ProcessSpec(
                    f"patroni-{az}",
                    self.kind,
                    az,
                    [plan.binaries["patroni"], str(config)],
                    port=plan.ports.postgres(i),
                    file=config,
                    as_postgres=True,
                    extra={
                        "rest_port": plan.ports.patroni(i),
                        "member": plan.member(i),
                        "data_dir": str(plan.pg_data(i)),
                        "config": str(config),
                    },
                )
            )
        return specs

    def can_start(self, ctx: UpContext, spec: ProcessSpec) -> bool:
        return bool(ctx.facts.get("etcd"))

    def ports(self, plan: Plan) -> dict[int, str]:
        named = {}
        for i in plan.az_range:
            named[plan.ports.postgres(i)] = f"PostgreSQL, AZ {i}"
            named[plan.ports.patroni(i)] = f"Patroni REST API, AZ {i}"
        return named

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        lab = plan.lab
        dirs: list[tuple[Path, str, int]] = [
            (plan.socket_dir, "postgres", 0o755),
            (lab / "pg", "postgres", 0o700),
            (lab / "patroni", "postgres", 0o700),
        ]
        for i, az in enumerate(plan.azs):
            dirs += [
                (plan.pg_data(i), "postgres", 0o700),
                (lab / "logs" / f"postgres-{az}", "postgres", 0o700),
            ]
        return dirs

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {
            "db_write": {"host": "127.0.0.1", "port": plan.ports.db_write},
            "db_read": {"host": "127.0.0.1", "port": plan.ports.db_read},
            "db_members": [
                {
                    "name": plan.member(i),
                    "host": "127.0.0.1",
                    "port": plan.ports.postgres(i),
                    "rest_port": plan.ports.patroni(i),
                    "az": plan.azs[i],
                }
                for i in plan.az_range
            ],
            "database": DATABASE,
            "db_user": DB_USER,
        }

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        members = [plan.member(i) for i in plan.az_range]
        primary = facts.get("db_leader") or members[0]
        return {"db_primary": primary, "db_replicas": [m for m in members if m != primary]}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        return {
            "patroni_manage_directories": False,
            "patroni_scope": plan.scope,
            "patroni_etcd_hosts": [f"127.0.0.1:{plan.ports.etcd_client(i)}" for i in plan.az_range],
            "patroni_bin_dir": plan.pg_bin_dir,
            "patroni_superuser_password": secrets["db_superuser_password"],
            "patroni_replication_password": secrets["db_replication_password"],
            "patroni_restapi_password": secrets["patroni_restapi_password"],
            "patroni_etcd_password": secrets["etcd_patroni_password"],
        }

    def host_vars(self, plan: Plan, i: int) -> dict[str, Any]:
        lab, az = plan.lab, plan.azs[i]
        pgbackrest = (
            f"{plan.binaries['pgbackrest']} --config={plan.pgbackrest_config} "
            f"--stanza={STANZA} --pg1-path={plan.pg_data(i)}"
        )
        return {
            "patroni_member": {
                "name": plan.member(i),
                "az": az,
                "port": plan.ports.postgres(i),
                "rest_port": plan.ports.patroni(i),
                "data_dir": str(plan.pg_data(i)),
                "config_path": str(lab / "patroni" / f"{az}.yml"),
                "pgpass_path": str(lab / "patroni" / f"{az}.pgpass"),
                "socket_dir": str(plan.socket_dir),
                "log_dir": str(lab / "logs" / f"postgres-{az}"),
                # archive-push insists that pg1-path is the archiving server's own.
                "archive_command": f"{pgbackrest} archive-push %p",
                # A replica that streaming cannot serve (a rewind cut short, WAL the
                # primary recycled) replays from the archive, as pgBackRest intends.
                "restore_command": f'{pgbackrest} archive-get %f "%p"',
            }
        }

    # ----------------------------------------------------------------- up

    def progress_rows(self) -> list[str]:
        return ["Patroni leader", "Patroni sync standby", "database shop"]

    def step(self, ctx: UpContext) -> list[Row]:
        super().step(ctx)
        n = len(ctx.plan.azs)
        cluster = observe.patroni_cluster(ctx.state)
        leader = cluster["leader"]
        rows = []
        if leader:
            ctx.facts["db_leader"] = leader
            ports = [m["port"] for m in ctx.state.endpoints["db_members"]]
            ctx.launch("db", functools.partial(setup_database, ports, ctx.secrets))
            rows.append(Row("Patroni leader", True, leader))
        else:
            running = [m for m in cluster["members"] if m["state"] in ("running", "streaming")]
            rows.append(Row("Patroni leader", False, f"{len(running)}/{n} members running"))
        if cluster["sync_standby"]:
            rows.append(Row("Patroni sync standby", True, ", ".join(cluster["sync_standby"])))
        else:
            rows.append(Row("Patroni sync standby", False, "waiting for a synchronous standby"))
        if ctx.job_done("db"):
            ctx.facts["database"] = True
            rows.append(Row("database shop", True, "role and database shop"))
        else:
            detail = "creating (commits wait for the sync standby)" if leader else ""
            rows.append(Row("database shop", False, detail))
        return rows

    # ----------------------------------------------------------------- status

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        n = len(state.azs)
        cluster = observe.patroni_cluster(state)
        leader = cluster["leader"]
        streaming = observe.streaming_replicas(state, leader)
        replicas = [m["name"] for m in cluster["members"] if m["name"] != leader]
        healthy = (
            # Every replica streaming from the leader, not merely running: a member still
            # rewinding after a fault is no standby yet, and a second fault then blocks
            # writes (strict sync). Judged from the leader's view, which every Patroni
            # version reports alike.
            bool(leader and cluster["sync_standby"])
            and len(cluster["members"]) == n
            and set(replicas) <= streaming
        )
        detail = (
            f"leader {cluster['leader']}, sync {', '.join(cluster['sync_standby']) or 'none'}, "
            + ", ".join(f"{m['name']} {m['state']} lag {m['lag']}" for m in cluster["members"])
            + f"; streaming from the leader: {', '.join(sorted(streaming)) or 'none'}"
        )
        if cluster["leader"]:
            members = [m["name"] for m in state.endpoints.get("db_members", [])]
            outputs["db_primary"] = cluster["leader"]
            outputs["db_replicas"] = [m for m in members if m != cluster["leader"]]
        return [Row("database (Patroni)", healthy, detail)]

    # ----------------------------------------------------------------- down

    def stop_targets(self, state: LabState, wave: Wave) -> Targets:
        if wave == Wave.CHILDREN:
            # Patroni starts the postmaster detached: it outlives a stopped Patroni.
            return [
                (pid, entry.get("data_dir"))
                for entry in state.by_kind(self.kind)
                if entry.get("data_dir")
                and (pid := procmod.postmaster_pid_from(entry["data_dir"])) is not None
            ]
        return super().stop_targets(state, wave)


def setup_database(ports: list[int], secrets: dict[str, str], timeout_s: float = 60.0) -> None:
    """Create (or re-password) the shop's role and its database on the primary."""
    on_primary(
        ports,
        secrets["db_superuser_password"],
        lambda conn, sql: create_owned_database(
            conn, sql, DB_USER, secrets["db_app_password"], DATABASE
        ),
        timeout_s,
    )


def on_primary(
    ports: list[int],
    superuser_password: str,
    work: Callable[[Any, Any], None],
    timeout_s: float = 60.0,
) -> None:
    """Run ``work(connection, psycopg.sql)`` as the superuser on the primary.

    It connects to whichever member accepts writes (``target_session_attrs=read-write``),
    not to the member named leader: on a lab started again on its data, Patroni can name
    the previous leader while it is still in recovery ("cannot execute ALTER ROLE in a
    read-only transaction"). It retries, bounded by ``timeout_s``, until one does.
    """
    # Imported here: psycopg only while the lab starts (status and down never need it).
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(
                host=",".join(["127.0.0.1"] * len(ports)),
                port=",".join(str(p) for p in ports),
                user="postgres",
                password=superuser_password,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
                target_session_attrs="read-write",
            ) as conn:
                work(conn, sql)
            return
        except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def create_owned_database(conn: Any, sql: Any, user: str, password: str, database: str) -> None:
    """Role ``user`` (created, or re-passworded) and its own ``database`` (idempotent)."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(
        sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(user), sql.Literal(password)
        )
    )
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(user)
            )
        )
