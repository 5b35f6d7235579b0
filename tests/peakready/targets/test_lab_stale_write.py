"""The stale-primary probe's one write, against a real PostgreSQL whose commits wait for a
synchronous standby that does not exist: what a frozen AZ's old primary does when it
comes back before Patroni demotes it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from peakready.targets.lab import _try_write

pytestmark = pytest.mark.lab

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PORT = 20492


def pg_ctl(data: Path, *args: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture(scope="module")
def primary_without_standby() -> Iterator[Path]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (make setup)")
    root = Path(tempfile.mkdtemp(prefix="peakready-stale-", dir="/tmp"))
    root.chmod(0o755)
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"]
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *initdb],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {PORT}\nunix_socket_directories = '{root}'\n"
            "fsync = off\nsynchronous_standby_names = 'nobody'\n"
        )
    pg_ctl(data, "-l", str(root / "postgres.log"), "-w", "start")
    try:
        yield data
    finally:
        pg_ctl(data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def backends() -> int:
    with psycopg.connect(
        host="127.0.0.1", port=PORT, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else -1


def test_a_write_no_standby_confirms_is_unacknowledged_and_leaves_nothing_behind(
    primary_without_standby: Path,
) -> None:
    started = time.monotonic()
    assert _try_write("127.0.0.1", PORT, "", wait_s=1.0) == "unacknowledged"
    assert time.monotonic() - started < 5  # bounded: statement_timeout never ends this wait
    time.sleep(0.5)
    # No backend waits for a standby on its way out: a fast shutdown, which is how
    # Patroni demotes a stale primary, is not held up.
    assert backends() == 0
    started = time.monotonic()
    pg_ctl(primary_without_standby, "-m", "fast", "-w", "-t", "10", "stop")
    assert time.monotonic() - started < 10
    pg_ctl(primary_without_standby, "-l", "/dev/null", "-w", "start")


def test_a_primary_that_is_gone_is_unreachable(primary_without_standby: Path) -> None:
    assert _try_write("127.0.0.1", PORT + 1, "", wait_s=1.0) == "unreachable"
