"""The write path when the database goes away or turns read-only, and how the pool recovers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

from peakready.app.db import make_async_pool
from peakready.app.pool import QueryTimeout

if TYPE_CHECKING:
    from conftest import App, Helpers, Postgres

READ_REPLICA_APP_PORT = 23106

pytestmark = pytest.mark.lab


def place(app: App, k: str, product_id: int = 14) -> httpx.Response:
    return httpx.post(
        f"{app.url}/orders",
        json={"product_id": product_id, "quantity": 1},
        headers={"Idempotency-Key": k},
        timeout=15,
    )


def test_read_only_database_answers_503_then_recovers(app_server: App, postgres: Postgres) -> None:
    # Warm the pool so that it holds connections opened while the server was writable.
    for _ in range(5):
        assert place(app_server, f"warm-{uuid.uuid4()}").status_code == 201
    postgres.execute("ALTER SYSTEM SET default_transaction_read_only = on")
    postgres.execute("SELECT pg_reload_conf()")
    k = f"ro-{uuid.uuid4()}"
    try:
        time.sleep(0.2)
        for _ in range(12):  # every pooled connection in turn, then new ones
            response = place(app_server, k)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
        assert httpx.get(f"{app_server.url}/readyz", timeout=10).status_code == 503
        assert httpx.get(f"{app_server.url}/healthz").status_code == 200
    finally:
        postgres.execute("ALTER SYSTEM RESET default_transaction_read_only")
        postgres.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)
    first = place(app_server, k)  # the client's retry with the same key
    assert first.status_code == 201, first.text
    assert place(app_server, k).json()["id"] == first.json()["id"]
    rows = postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,))
    assert rows == [(1,)]


def test_pool_recovers_after_a_database_restart_without_app_restart(
    app_server: App, postgres: Postgres
) -> None:
    for _ in range(5):
        assert place(app_server, f"warm-{uuid.uuid4()}").status_code == 201
    postgres.pg_ctl("stop", "-m", "immediate")
    try:
        response = place(app_server, f"down-{uuid.uuid4()}")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert httpx.get(f"{app_server.url}/readyz", timeout=10).status_code == 503
    finally:
        postgres.pg_ctl("start")
    # The very first request after the database is back succeeds (no reconnect back-off),
    # and no pooled connection broken by the restart surfaces as an error.
    for _ in range(15):
        assert place(app_server, f"after-{uuid.uuid4()}").status_code == 201
    assert httpx.get(f"{app_server.url}/readyz", timeout=10).status_code == 200


def postgres_pids(postgres: Postgres) -> list[int]:
    """The postmaster first, then its children (backends, walwriter, …)."""
    postmaster = int((postgres.data / "postmaster.pid").read_text().splitlines()[0])
    children = [
        int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == postmaster
    ]
    return [postmaster, *children]


def _ppid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_frozen_database_answers_503_in_bounded_time_then_recovers(
    app_server: App, postgres: Postgres
) -> None:
    for _ in range(5):  # the pool now holds connections to the soon-frozen server
        assert place(app_server, f"warm-{uuid.uuid4()}").status_code == 201
    pids = postgres_pids(postgres)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        # The check (0.5 s) fails, every idle connection to that server is dropped, then a
        # new connection times out (connect_timeout=2, libpq's minimum): never 10 x 0.5 s.
        for _ in range(2):
            start = time.monotonic()
            response = place(app_server, f"frozen-{uuid.uuid4()}")
            took = time.monotonic() - start
            assert response.status_code == 503, response.text
            assert took < 3.5
        start = time.monotonic()
        assert httpx.get(f"{app_server.url}/readyz", timeout=10).status_code == 503
        assert time.monotonic() - start < 3.5
        assert httpx.get(f"{app_server.url}/healthz", timeout=1).status_code == 200
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    start = time.monotonic()
    assert place(app_server, f"thawed-{uuid.uuid4()}").status_code == 201
    assert time.monotonic() - start < 2


def test_a_trusted_server_that_freezes_fails_at_the_deadline_and_loses_the_trust(
    postgres: Postgres,
) -> None:
    pool = make_async_pool(postgres.app_dsn, postgres.app_password, 4, 2.0, "t", 0.3, 5.0)

    async def scenario() -> tuple[float, float]:
        async with pool.connection() as conn:  # the server answers: trusted for 5 s
            await conn.execute("SELECT 1")
        pids = postgres_pids(postgres)
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            start = time.monotonic()
            with pytest.raises(QueryTimeout, match=r"within 0\.5s"):
                async with pool.connection(deadline_s=0.5) as conn:  # trusted: no check
                    await conn.execute("SELECT 1")
            cut = time.monotonic() - start
            start = time.monotonic()
            with pytest.raises(psycopg.OperationalError):
                async with pool.connection() as conn:  # no longer trusted: a new connection
                    await conn.execute("SELECT 1")
            reconnect = time.monotonic() - start
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        async with pool.connection(deadline_s=2.0) as conn:
            await conn.execute("SELECT 1")
        await pool.close()
        return cut, reconnect

    cut, reconnect = asyncio.run(scenario())
    assert 0.45 < cut < 1.0  # the deadline, not the thaw
    assert reconnect < 3.0  # connect_timeout=2 on the frozen server, not a hang


def test_with_replicas_for_reads_a_lost_primary_degrades_instead_of_unready(
    workdir: Path, postgres: Postgres, extra_apps: list[App], helpers: Helpers
) -> None:
    # A read-only server stands for "no primary, replicas up" (mid-failover).
    read_dsn = postgres.app_dsn + " target_session_attrs=prefer-standby"
    app = helpers.start_app(
        workdir, postgres, READ_REPLICA_APP_PORT, None, None, db_read_dsn=read_dsn
    )
    extra_apps.append(app)
    postgres.execute("ALTER SYSTEM SET default_transaction_read_only = on")
    postgres.execute("SELECT pg_reload_conf()")
    try:
        time.sleep(0.2)
        ready = httpx.get(f"{app.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        assert "writes" in ready.json()["degraded"]
        assert httpx.get(f"{app.url}/products/3", timeout=10).status_code == 200
        assert place(app, f"ro-{uuid.uuid4()}").status_code == 503
    finally:
        postgres.execute("ALTER SYSTEM RESET default_transaction_read_only")
        postgres.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)
    assert place(app, f"rw-{uuid.uuid4()}").status_code == 201
    ready = httpx.get(f"{app.url}/readyz", timeout=10).json()
    assert (ready["status"], ready["database"]) == ("ready", "ok")
