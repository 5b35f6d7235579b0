"""The verification playbook for real: ansible-runner, local connection, a real PostgreSQL.

On AWS the playbook runs over SSM on an app instance; here the same playbook runs with
the local connection against a scratch PostgreSQL on 127.0.0.1 holding a "restored"
storefront database, so its SQL, its result hand-back and the drill's judgement are
exercised end to end. The RDS side still runs on moto.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_world
import psycopg
import pytest

from peakready.backup.aws import run_aws_restore_drill
from peakready.backup.aws_verify import AnsibleSsmVerifier, ScratchDb
from peakready.backup.ledger import LedgerEntry
from peakready.backup.scratch import (
    ScratchPostgres,
    free_port,
    postgres_owned_dir,
    remove_tree,
    wait_for,
)
from peakready.lab.proc import as_postgres_user

pytestmark = pytest.mark.lab

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PORTS = range(29940, 29950)


aws = aws_world.aws  # fixtures, used by name
world = aws_world.world


@dataclasses.dataclass
class RestoredDb:
    port: int
    password: str

    def sql(self, statement: str, *args: Any, user: str = "shop") -> None:
        with psycopg.connect(
            host="127.0.0.1", port=self.port, dbname="shop", user=user, password=self.password
        ) as conn:
            conn.execute(statement, args or None)


@pytest.fixture
def restored() -> Iterator[RestoredDb]:
    """A real PostgreSQL 15 with a storefront schema, as a restore would hold it."""
    if not (PG_BIN / "initdb").exists() or shutil.which("psql") is None:
        pytest.skip("PostgreSQL 15 not installed (make apt)")
    root = postgres_owned_dir("peakready-aws-verify-")
    password = secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    server: ScratchPostgres | None = None
    try:
        subprocess.run(
            as_postgres_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(root / "pg"),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-N",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        server = ScratchPostgres(root / "pg", free_port(PORTS), root / "pg.log")
        server.start()
        db = RestoredDb(server.port, password)
        assert wait_for(lambda: _ready(db), 30), "\n".join(server.log_tail())
        with psycopg.connect(
            host="127.0.0.1", port=db.port, dbname="postgres", user="postgres", password=password
        ) as conn:
            conn.autocommit = True
            conn.execute(f"CREATE ROLE shop LOGIN PASSWORD '{password}'")
            conn.execute("CREATE DATABASE shop OWNER shop")
        db.sql(
            "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL,"
            " price numeric(10,2) NOT NULL, stock int NOT NULL CHECK (stock >= 0),"
            " initial_stock int NOT NULL);"
            "CREATE TABLE orders (id bigserial PRIMARY KEY, idempotency_key text UNIQUE NOT NULL,"
            " product_id int NOT NULL REFERENCES products, quantity int NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now());"
            "INSERT INTO products VALUES (1, 'a', 1, 100, 100), (2, 'b', 1, 100, 100)"
        )
        yield db
    finally:
        if server is not None:
            server.stop()
        remove_tree(root)


def _ready(db: RestoredDb) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=db.port,
            dbname="postgres",
            user="postgres",
            password=db.password,
            connect_timeout=1,
        ):
            return True
    except psycopg.OperationalError:
        return False


def _place(db: RestoredDb, entries: list[LedgerEntry]) -> None:
    for e in entries:
        db.sql(
            "INSERT INTO orders (id, idempotency_key, product_id, quantity)"
            " VALUES (%s, %s, %s, %s)",
            e.order_id,
            e.key,
            e.product_id,
            e.quantity,
        )
        db.sql("UPDATE products SET stock = stock - %s WHERE id = %s", e.quantity, e.product_id)


def _ledger(n: int) -> tuple[list[LedgerEntry], float]:
    target = time.time() - 5
    entries = [
        LedgerEntry(
            key=f"verify-{i}",
            batch="before",
            product_id=1 + i % 2,
            quantity=1 + i % 3,
            sent=target - 30 + i,
            acked=target - 29 + i,
            order_id=10 + i,
            status=201,
        )
        for i in range(n)
    ]
    return entries, target


def _verifier(db: RestoredDb, password: str) -> Any:
    real = AnsibleSsmVerifier(
        password,
        connection="local",
        install_client=False,
        sslmode="disable",
        host_vars={"ansible_python_interpreter": sys.executable},
        timeout_s=120,
    )

    def local(scratch: ScratchDb, keys: list[str]) -> dict[str, Any]:
        # the scratch instance lives in moto; its data lives in the local PostgreSQL
        here = dataclasses.replace(
            scratch, address="127.0.0.1", port=db.port, verify_host="localhost"
        )
        return real(here, keys)

    return local


def test_playbook_finds_the_restored_orders_and_the_drill_judges_them(
    world: Any, restored: RestoredDb
) -> None:
    entries, target = _ledger(8)
    _place(restored, [e for e in entries if e.key != "verify-5"])  # one acknowledged order lost

    result = run_aws_restore_drill(
        entries, target, world.configuration, verifier=_verifier(restored, restored.password)
    )

    assert (result["verified_orders"], result["missing_orders"]) == (7, 1), result["reasons"]
    assert result["rpo_s"] == pytest.approx(target - float(entries[5].acked or 0), abs=0.01)
    assert result["reasons"][0].startswith("1 of 8 acknowledged orders missing")
    assert result["inconsistent_products"] == 0
    assert result["scratch_deleted"] is True


def test_playbook_failure_is_reported_and_the_scratch_still_deleted(
    world: Any, restored: RestoredDb
) -> None:
    entries, target = _ledger(2)
    _place(restored, entries)

    result = run_aws_restore_drill(
        entries, target, world.configuration, verifier=_verifier(restored, "wrong-password")
    )

    assert result["passed"] is False
    assert result["reasons"][0].startswith("verification playbook on localhost: failed (rc 2)")
    assert "password authentication failed" in result["reasons"][0]
    assert "wrong-password" not in result["reasons"][0]
    assert result["scratch_deleted"] is True
