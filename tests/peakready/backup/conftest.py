"""A small real PostgreSQL + pgBackRest (two repositories) + Redis to drill against.

It has what the backup drill reads from a lab (docs/internals.md): a write endpoint,
a pgBackRest config and stanza, Redis nodes, secrets. Orders go in through an order
client doing the storefront's transaction in SQL (the HTTP app is another tier).
Everything binds 127.0.0.1 on ports of this area's block and is torn down after each test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from peakready.backup.pgbackrest import PgBackRest
from peakready.backup.scratch import postgres_owned_dir, wait_for
from peakready.lab.proc import as_postgres_user
from peakready.topology import Objective, Topology

PORT_BASE = int(os.environ.get("PEAKREADY_BACKUP_TEST_PORT_BASE", "22000"))
PG_PORT = PORT_BASE + 160
REDIS_PORT = PORT_BASE + 161
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PRODUCTS = 40

SCHEMA = """
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL,
                       stock int NOT NULL CHECK (stock >= 0), initial_stock int NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, idempotency_key text UNIQUE NOT NULL,
                     product_id int NOT NULL REFERENCES products,
                     quantity int NOT NULL CHECK (quantity > 0),
                     created_at timestamptz NOT NULL DEFAULT now());
"""


def _need(binary: str) -> None:
    if not (shutil.which(binary) or Path(binary).exists()):
        pytest.skip(f"{binary} not installed (make apt)")


@dataclass
class MiniLab:
    root: Path
    password: str
    port_base: int = PORT_BASE
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "pg"

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def endpoints(self) -> dict[str, Any]:
        return {
            "http": f"http://127.0.0.1:{PORT_BASE}",
            "db_write": {"host": "127.0.0.1", "port": PG_PORT},
            "redis": [{"host": "127.0.0.1", "port": REDIS_PORT, "az": "eu-central-1a"}],
            "search_index": "products",
            "pgbackrest": {"config": str(self.config), "stanza": "peakready"},
        }

    def secrets(self) -> dict[str, str]:
        return {"db_superuser_password": self.password, "redis_password": self.password}

    @property
    def pgbr(self) -> PgBackRest:
        return PgBackRest(self.config, "peakready")

    def conninfo(self) -> str:
        return (
            f"host=127.0.0.1 port={PG_PORT} user=postgres dbname=shop "
            f"password={self.password} connect_timeout=3"
        )

    def sql(self, statement: str, dbname: str = "shop") -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo().replace("dbname=shop", f"dbname={dbname}")) as conn:
            conn.autocommit = True
            cursor = conn.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []

    def full_backups(self, repos: tuple[int, ...] = (1, 2)) -> None:
        for repo in repos:
            done = self.pgbr.run("--type=full", "backup", repo=repo, timeout=120)
            assert done.returncode == 0, done.error_line

    def write_and_switch(self, rows: int = 5, wait: bool = True) -> str:
        """Some committed orders, then a WAL switch; returns the closed segment's name."""
        client = SqlOrderClient(self.conninfo())
        try:
            for n in range(rows):
                client.place(f"pre-{time.time_ns()}-{n}", 1 + n % PRODUCTS, 1)
        finally:
            client.close()
        segment = str(self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
        if not wait:
            return segment
        archived = lambda: self.sql("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] or ""  # noqa: E731
        assert wait_for(lambda: archived() >= segment, 30), f"{segment} never archived"
        return segment

    def write_state(self) -> Path:
        """A ``state.json`` + ``secrets.json`` as ``lab up`` writes them; returns the lab dir."""
        (self.root / "state.json").write_text(
            json.dumps(
                {
                    "stack": "dev",
                    "lab_dir": str(self.root),
                    "port_base": self.port_base,
                    "processes": [],
                    "outputs": {},
                    "endpoints": self.endpoints,
                }
            )
        )
        secrets_file = self.root / "secrets.json"
        secrets_file.write_text(json.dumps(self.secrets()))
        secrets_file.chmod(0o600)
        return self.root

    def start_redis(self) -> None:
        conf = self.root / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {REDIS_PORT}\ndir {self.root}\ndbfilename src.rdb\n"
            f'requirepass {self.password}\nsave ""\nappendonly no\ndaemonize no\n'
            f"logfile {self.root / 'redis.log'}\n"
        )
        proc = subprocess.Popen(["redis-server", str(conf)], start_new_session=True)
        self.procs.append(proc)
        import redis

        client = redis.Redis(port=REDIS_PORT, password=self.password)
        assert wait_for(lambda: _ping(client), 10), "redis did not start"
        client.mset({f"product:{i}": f"cached-{i}" for i in range(1, 30)})
        client.close()


def _ping(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class SqlOrderClient:
    """The storefront's order transaction (DESIGN §4), straight in SQL."""

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True)

    def products(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT id, name, price, stock FROM products ORDER BY id")
        return [{"id": r[0], "name": r[1], "price": float(r[2]), "stock": r[3]} for r in rows]

    def place(self, key: str, product_id: int, quantity: int) -> tuple[int, dict[str, Any]]:
        with self.conn.transaction():
            row = self.conn.execute(
                "INSERT INTO orders (idempotency_key, product_id, quantity) VALUES (%s, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                (key, product_id, quantity),
            ).fetchone()
            if row is None:
                old = self.conn.execute(
                    "SELECT id FROM orders WHERE idempotency_key = %s", (key,)
                ).fetchone()
                assert old is not None
                return 200, {"id": old[0]}
            updated = self.conn.execute(
                "UPDATE products SET stock = stock - %s WHERE id = %s AND stock >= %s",
                (quantity, product_id, quantity),
            )
            if updated.rowcount != 1:
                raise psycopg.errors.CheckViolation("out of stock")
        return 201, {"id": row[0], "product_id": product_id, "quantity": quantity}

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="session")
def minilab_template() -> Iterator[tuple[Path, str]]:
    """Built once: initdb, schema, stanza, a first full backup in repo1 (as `lab up` does).

    Each test gets a copy at the same path (so every config still points at it)."""
    for binary in (str(PG_BIN / "initdb"), "pgbackrest", "redis-server", "searchd"):
        _need(binary)
    session = postgres_owned_dir("peakready-backup-test-")
    os.chmod(session, 0o755)
    live = session / "live"
    live.mkdir(mode=0o755)
    shutil.chown(live, "postgres", "postgres")
    lab = MiniLab(root=live, password=secrets.token_urlsafe(18))
    try:
        _setup_postgres(lab)
        done = lab.pgbr.run("--type=full", "backup", repo=1, timeout=180)
        assert done.returncode == 0, done.error_line
        _stop(lab, clean=True)
        live.rename(session / "template")
        yield session, lab.password
    finally:
        _stop(lab)
        shutil.rmtree(session, ignore_errors=True)


@pytest.fixture
def minilab(minilab_template: tuple[Path, str]) -> Iterator[MiniLab]:
    """PostgreSQL 15 archiving through pgBackRest into two repositories (repo1 holding a
    full backup, repo2 empty), torn down after the test."""
    session, password = minilab_template
    live = session / "live"
    subprocess.run(["cp", "-a", str(session / "template"), str(live)], check=True)
    lab = MiniLab(root=live, password=password)
    try:
        _start_postgres(lab)
        yield lab
    finally:
        _stop(lab)
        shutil.rmtree(live, ignore_errors=True)


def _stop(lab: MiniLab, clean: bool = False) -> None:
    """Stop what this fixture started, by PID: PostgreSQL immediately (SIGQUIT; ``clean``:
    fast shutdown with a checkpoint, SIGINT), others with SIGTERM."""
    for proc in lab.procs:
        if proc.poll() is None:
            is_postgres = "postgres" in " ".join(map(str, proc.args))
            pg_signal = signal.SIGINT if clean else signal.SIGQUIT
            proc.send_signal(pg_signal if is_postgres else signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    lab.procs.clear()


def _setup_postgres(lab: MiniLab) -> None:
    root = lab.root
    for sub in ("repo1", "repo2", "log", "lock", "spool", "sock"):
        (root / sub).mkdir()
        shutil.chown(root / sub, "postgres", "postgres")
    pwfile = root / "pw"
    pwfile.write_text(lab.password)
    shutil.chown(pwfile, "postgres", "postgres")
    pwfile.chmod(0o600)
    subprocess.run(
        as_postgres_user(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(lab.data),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "-A",
                "scram-sha-256",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        cwd="/",
    )
    pwfile.unlink()
    lab.config.write_text(
        f"""[global]
repo1-path={root / "repo1"}
repo2-path={root / "repo2"}
repo1-retention-full=2
repo2-retention-full=2
log-path={root / "log"}
lock-path={root / "lock"}
spool-path={root / "spool"}
start-fast=y
log-level-console=warn
log-level-file=info

[peakready]
pg1-path={lab.data}
pg1-port={PG_PORT}
pg1-socket-path={root / "sock"}
"""
    )
    (lab.data / "pg_hba.conf").write_text(
        "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    with open(lab.data / "postgresql.conf", "a") as conf:
        conf.write(
            f"""
port = {PG_PORT}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{root / "sock"}'
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config={lab.config} --stanza=peakready archive-push %p'
shared_buffers = 32MB
max_wal_size = 256MB
"""
        )
    _start_postgres(lab)
    lab.sql("CREATE DATABASE shop", dbname="postgres")
    lab.sql(SCHEMA)
    lab.sql(
        "INSERT INTO products SELECT i, 'product ' || i, 9.99 + i, 1000, 1000"
        f" FROM generate_series(1, {PRODUCTS}) i"
    )
    done = lab.pgbr.run("stanza-create", timeout=60)
    assert done.returncode == 0, done.error_line


def _start_postgres(lab: MiniLab) -> None:
    with open(lab.root / "pg.log", "ab") as log:
        proc = subprocess.Popen(
            as_postgres_user([str(PG_BIN / "postgres"), "-D", str(lab.data)]),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            start_new_session=True,
        )
    lab.procs.append(proc)
    assert wait_for(lambda: _connects(lab), 20), (lab.root / "pg.log").read_text()[-2000:]


def _connects(lab: MiniLab) -> bool:
    try:
        lab.sql("SELECT 1", dbname="postgres")
        return True
    except psycopg.Error:
        return False


@pytest.fixture
def topology() -> Topology:
    dev = Topology.load("dev")
    return dev.model_copy(update={"lab": dev.lab.model_copy(update={"port_base": PORT_BASE})})


class Policies:
    """Copies of the test topology with another ``backup-restore`` objective."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def with_rpo(self, rpo_s: float, rto_s: float = 120) -> Topology:
        policy = dict(self.topology.resiliency)
        policy["backup-restore"] = Objective(rto_s=rto_s, rpo_s=rpo_s)
        return self.topology.model_copy(update={"resiliency": policy})


@pytest.fixture
def policies(topology: Topology) -> Policies:
    return Policies(topology)


@pytest.fixture
def orders(minilab: MiniLab) -> Iterator[SqlOrderClient]:
    client = SqlOrderClient(minilab.conninfo())
    yield client
    client.close()
