"""The back office: its own PostgreSQL (a primary and a report replica) and a group of
workers draining the order queue (``python -m peakready.backoffice``), only when the
stack has a ``queue`` tier.

The back office never shares the shop's database. Its PostgreSQL is regional (it
stands for a Multi-AZ RDS instance, which fails over by itself); the report replica
streams from it and serves ``GET /orders/{id}``. The workers are the supervisor's
second group (the worker ASG): one per AZ, replaced in a healthy AZ when lost, not in
``state.json``. Their desired capacity stays 0 until the broker's cluster formed and
the database exists; this module then sets it in ``<lab>/backoffice/desired``, as
the drills do to stop and start them. HAProxy fronts them (``backoffice_endpoint``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peakready.errors import PeakreadyError
from peakready.lab import observe
from peakready.lab import proc as procmod
from peakready.lab.autoscaler import lab_backlog_policy
from peakready.lab.components.base import Component, ProcessSpec, Row, Targets, UpContext, Wave
from peakready.lab.components.database import create_owned_database, on_primary
from peakready.lab.components.queue import amqp_url
from peakready.lab.state import (
    BACKOFFICE_DESIRED,
    BACKOFFICE_GROUP,
    BACKOFFICE_METRICS_TARGETS,
    BACKOFFICE_SCALING,
    write_json_atomic,
)
from peakready.lab.state import BACKOFFICE_SLOTS as SLOTS

if TYPE_CHECKING:
    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState

DB_NAME = DB_USER = "backoffice"
PRIMARY, REPORT = "backoffice-db", "backoffice-report-db"


class Backoffice(Component):
    kind = "backoffice"
    role = "backoffice"
    regional = True
    after = ("rabbitmq", "haproxy")
    secret_keys = ("backoffice_db_password", "backoffice_db_superuser_password")

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        if plan.topology.queue is None:
            return []
        p = plan.ports
        return [
            postgres_spec(plan, PRIMARY, db_dir(plan), p.backoffice_db),
            postgres_spec(plan, REPORT, report_dir(plan), p.backoffice_report_db),
        ]

    def can_start(self, ctx: UpContext, spec: ProcessSpec) -> bool:
        if spec.name == PRIMARY:
            return ctx.job_done("backoffice-initdb")
        return ctx.job_done("backoffice-basebackup")

    def ports(self, plan: Plan) -> dict[int, str]:
        if plan.topology.queue is None:
            return {}
        p = plan.ports
        found = {
            p.backoffice_db: "the back office's PostgreSQL",
            p.backoffice_report_db: "the back office's report replica",
            p.backoffice_http: "HAProxy back-office front",
        }
        found.update({p.backoffice(s): f"back-office worker slot {s}" for s in range(SLOTS)})
        return found

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        if plan.topology.queue is None:
            return []
        return [
            (folder(plan), "root", 0o755),
            (db_dir(plan), "postgres", 0o700),
            (report_dir(plan), "postgres", 0o700),
        ]

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        if plan.topology.queue is None:
            return {}
        p = plan.ports
        return {
            "backoffice_db": {"host": "127.0.0.1", "port": p.backoffice_db},
            "backoffice_report_db": {"host": "127.0.0.1", "port": p.backoffice_report_db},
            "backoffice_desired": len(plan.azs),
        }

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        if plan.topology.queue is None:
            return {}
        return {
            "backoffice_group": f"backoffice-{plan.stack}",
            "backoffice_endpoint": f"http://127.0.0.1:{plan.ports.backoffice_http}",
        }

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        queue = plan.topology.queue
        if queue is None:
            return {"backoffice_settings": {}}
        p = plan.ports
        dsn = "host=127.0.0.1 port={} dbname=backoffice user=backoffice connect_timeout=2"
        return {
            "backoffice_env_path": str(env_file(plan)),
            "backoffice_settings": {
                "DB_DSN": dsn.format(p.backoffice_db),
                "REPORT_DSN": dsn.format(p.backoffice_report_db),
                "DB_PASSWORD": secrets["backoffice_db_password"],
                "QUEUE_URL": amqp_url(p, len(plan.azs)),
                "QUEUE_PASSWORD": secrets["rabbitmq_password"],
                "QUEUE_NAME": queue.queue_name,
                "QUEUE_MAX_LENGTH": str(queue.max_length),
                "QUEUE_MESSAGE_TTL_S": str(queue.message_ttl_s),
                "QUEUE_DEAD_LETTER": str(queue.dead_letter).lower(),
                "AUDIT_TOKEN": secrets["audit_token"],
            },
        }

    def progress_rows(self) -> list[str]:
        return ["back-office database", "back-office workers"]

    def step(self, ctx: UpContext) -> list[Row]:
        plan = ctx.plan
        if plan.topology.queue is None:
            return [
                Row("back-office database", True, "no queue tier"),
                Row("back-office workers", True, "no queue tier"),
            ]
        secrets = ctx.secrets
        ctx.launch("backoffice-initdb", lambda: initdb(plan, secrets))
        super().step(ctx)
        p = plan.ports
        if ctx.started(PRIMARY):
            ctx.launch("backoffice-provision", lambda: provision(p.backoffice_db, secrets))
        if ctx.job_done("backoffice-provision"):
            ctx.launch("backoffice-basebackup", lambda: basebackup(plan, secrets))
        report_up = ctx.started(REPORT) and procmod.port_in_use(p.backoffice_report_db)
        db_row = Row(
            "back-office database",
            report_up,
            "primary + report replica" if report_up else "initialising",
        )
        if "backoffice_desired" not in ctx.facts:  # no workers before their queue and DB
            set_desired(plan.lab, 0)
            ctx.facts["backoffice_desired"] = 0
        prepared = ctx.facts.get("queue") and ctx.job_done("backoffice-provision") and report_up
        if prepared and not ctx.facts["backoffice_desired"]:
            set_desired(plan.lab, len(plan.azs))
            ctx.facts["backoffice_desired"] = len(plan.azs)
        ready = ready_workers(ctx.state)
        n = len(plan.azs)
        # At least one per AZ: more when a backlog waits (the group's policy).
        return [db_row, Row("back-office workers", len(ready) >= n, f"{len(ready)}/{n} consuming")]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        endpoints = state.endpoints
        if "backoffice_db" not in endpoints:
            return []
        rows = []
        for key, what in (("backoffice_db", "primary"), ("backoffice_report_db", "report replica")):
            port = int(endpoints[key]["port"])
            up = procmod.port_in_use(port)
            rows.append(
                Row(f"back-office database {what} ({port})", up, "accepting" if up else "down")
            )
        desired = int(state.backoffice_group().get("desired", 0))
        ready = ready_workers(state)
        rows.append(
            Row(
                "back-office workers (supervisor)",
                desired > 0 and len(ready) == desired,
                f"{len(ready)}/{desired} consuming: "
                + (", ".join(f"{w['id']}@{w['az']}" for w in ready) or "none"),
            )
        )
        return rows

    def stop_targets(self, state: LabState, wave: Wave) -> Targets:
        # The workers with the other servers (the supervisor stops with them); their
        # database once they disconnected.
        if wave == Wave.SERVERS:
            group = state.backoffice_group()
            workers = group.get("instances", []) + group.get("terminating", [])
            return [(int(w["pid"]), None) for w in workers]
        if wave == Wave.CHILDREN:
            return [(int(e["pid"]), e.get("data_dir")) for e in state.by_kind(self.kind)]
        return []


def folder(plan: Plan) -> Path:
    return plan.lab / "backoffice"


def db_dir(plan: Plan) -> Path:
    return folder(plan) / "db"


def report_dir(plan: Plan) -> Path:
    return folder(plan) / "report"


def env_file(plan: Plan) -> Path:
    return folder(plan) / "backoffice.env"


def passfile(plan: Plan) -> Path:
    return folder(plan) / "pgpass"


def worker_groups(plan: Plan) -> list[dict[str, Any]]:
    """The back office's group in ``supervisor.json`` (none without a queue tier), with
    its backlog policy (``peakready.lab.autoscaler.lab_backlog_policy``)."""
    policy = lab_backlog_policy(plan.topology, len(plan.azs), SLOTS)
    if policy is None:
        return []
    return [
        {
            "name": "backoffice",
            "group": f"backoffice-{plan.stack}",
            "desired": 0,
            "desired_file": BACKOFFICE_DESIRED,
            "slots": SLOTS,
            "slot_port": plan.ports.backoffice(0),
            "haproxy_backend": "backoffice",
            "server_prefix": "bo",
            "command": [
                *(sys.executable, "-m", "peakready.backoffice"),
                *("--env-file", str(env_file(plan))),
            ],
            "env_prefix": "PEAKREADY_BACKOFFICE_",
            "group_file": BACKOFFICE_GROUP,
            "metrics_targets": BACKOFFICE_METRICS_TARGETS,
            "backlog_scaling": {
                **policy.as_dict(),
                "queue_env_file": str(env_file(plan)),
                "scaling_file": BACKOFFICE_SCALING,
            },
        }
    ]


def set_desired(lab: Path, desired: int) -> None:
    """The worker group's desired capacity, which the supervisor reads every tick."""
    write_json_atomic(lab / BACKOFFICE_DESIRED, desired)


def ready_workers(state: LabState) -> list[dict[str, Any]]:
    """The group's workers whose ``/readyz`` answers 200 (they consume)."""
    return [
        w for w in state.backoffice_group().get("instances", []) if ready_worker(int(w["port"]))
    ]


def ready_worker(port: int) -> bool:
    status, _ = observe.http_get(f"http://127.0.0.1:{port}/readyz", timeout=0.5)
    return status == 200


def postgres_spec(plan: Plan, name: str, data: Path, port: int) -> ProcessSpec:
    """A plain PostgreSQL server (no Patroni: the back office's RDS stand-in), small."""
    settings = {
        "port": port,
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(plan.socket_dir),
        "shared_buffers": "16MB",
        "max_connections": 40,
        "wal_level": "replica",
        "max_wal_senders": 4,
        "hot_standby": "on",
        "log_min_messages": "warning",
    }
    cmd = [plan.binaries["postgres"], "-D", str(data)]
    for key, value in settings.items():
        cmd += ["-c", f"{key}={value}"]
    return ProcessSpec(
        name,
        Backoffice.kind,
        None,
        cmd,
        port=port,
        cwd=data,
        as_postgres=True,
        extra={"data_dir": str(data)},
    )


def postgres_file(path: Path, content: str) -> None:
    """A 0600 file the postgres user owns (a password file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    shutil.chown(path, "postgres", "postgres")


def initdb(plan: Plan, secrets: dict[str, str]) -> None:
    """A new cluster in the back office's folder (kept when one is there already)."""
    data = db_dir(plan)
    if (data / "PG_VERSION").exists():
        return
    pw = folder(plan) / "initdb.pw"
    postgres_file(pw, secrets["backoffice_db_superuser_password"])
    try:
        done = procmod.run_as_postgres(
            [
                str(Path(plan.pg_bin_dir) / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                f"--pwfile={pw}",
                "--no-sync",
            ],
            timeout=60,
        )
    finally:
        pw.unlink(missing_ok=True)
    if done.returncode != 0:
        raise PeakreadyError(f"back-office initdb failed: {done.stderr.strip()[-300:]}")


def provision(port: int, secrets: dict[str, str]) -> None:
    """The back office's user and database on its primary (idempotent)."""
    on_primary(
        [port],
        secrets["backoffice_db_superuser_password"],
        lambda conn, sql: create_owned_database(
            conn, sql, DB_USER, secrets["backoffice_db_password"], DB_NAME
        ),
        timeout_s=60,
    )


def pg_basebackup(
    bin_dir: Path, port: int, password: str, pgpass: Path, dest: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """``pg_basebackup`` of the back office's primary on ``port`` into ``dest`` as
    postgres (WAL streamed with it, a fast checkpoint), its password in ``pgpass``
    (0600, written here); ``options`` add to that. The report replica and the backup
    drill make theirs with it."""
    postgres_file(pgpass, f"127.0.0.1:{port}:*:postgres:{password}\n")
    return procmod.run_as_postgres(
        [
            str(bin_dir / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-D", str(dest)),
            *("-X", "stream", "-c", "fast", *options),
        ],
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PGPASSFILE": str(pgpass), "LANG": "C.UTF-8"},
    )


def basebackup(plan: Plan, secrets: dict[str, str]) -> None:
    """The report replica: a base backup of the primary, streaming from it (kept when
    one is there already)."""
    data = report_dir(plan)
    if (data / "PG_VERSION").exists():
        return
    done = pg_basebackup(
        Path(plan.pg_bin_dir),
        plan.ports.backoffice_db,
        secrets["backoffice_db_superuser_password"],
        passfile(plan),
        data,
        "-R",
        "--no-sync",
    )
    if done.returncode != 0:
        raise PeakreadyError(
            f"back-office report replica: pg_basebackup failed: {done.stderr.strip()[-300:]}"
        )
