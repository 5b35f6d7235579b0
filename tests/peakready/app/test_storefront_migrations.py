"""Migrations and seeding when several instances start at once."""

from __future__ import annotations

import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from peakready.app.db import MIGRATIONS, ON_SALE, migrate

if TYPE_CHECKING:
    from conftest import Postgres

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]


def test_concurrent_starts_migrate_and_seed_once(postgres: Postgres) -> None:
    postgres.execute("DROP DATABASE IF EXISTS shop_migrations", dbname="postgres")
    postgres.execute("CREATE DATABASE shop_migrations OWNER shop", dbname="postgres")
    dsn = postgres.app_dsn.replace("dbname=shop", "dbname=shop_migrations")
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(migrate, dsn, postgres.app_password, 25, 7, 20) for _ in range(4)
            ]
            for future in futures:
                future.result()
        # A later start on a populated catalogue changes nothing.
        migrate(dsn, postgres.app_password, 99, 1, 20)
        count = postgres.execute(
            f"SELECT count(*), sum(stock), min(initial_stock) FROM products WHERE {ON_SALE}",
            dbname="shop_migrations",
        )
        assert count == [(25, 25 * 7, 7)]
        versions = postgres.execute(
            "SELECT version FROM schema_migrations ORDER BY version", dbname="shop_migrations"
        )
        assert versions == [(version,) for version, _ in MIGRATIONS]
    finally:
        postgres.execute("DROP DATABASE shop_migrations WITH (FORCE)", dbname="postgres")


def test_migration_without_privileges_is_one_line_and_exit_1(postgres: Postgres) -> None:
    password = secrets.token_hex(12)
    postgres.execute("DROP DATABASE IF EXISTS shop_locked", dbname="postgres")
    postgres.execute("DROP ROLE IF EXISTS shop_reader", dbname="postgres")
    postgres.execute(f"CREATE ROLE shop_reader LOGIN PASSWORD '{password}'", dbname="postgres")
    postgres.execute("CREATE DATABASE shop_locked", dbname="postgres")  # owned by postgres
    try:
        result = subprocess.run(
            [sys.executable, "-m", "peakready.app"],
            env={
                "PYTHONPATH": str(REPO),
                "PEAKREADY_APP_MIGRATE": "true",
                "PEAKREADY_APP_DB_DSN": (
                    f"host=127.0.0.1 port={postgres.port} dbname=shop_locked user=shop_reader"
                ),
                "PEAKREADY_APP_DB_PASSWORD": password,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines == [
            "peakready-app: error: migrations failed: permission denied for schema public"
        ]
        assert password not in result.stderr
    finally:
        postgres.execute("DROP DATABASE shop_locked WITH (FORCE)", dbname="postgres")
        postgres.execute("DROP ROLE shop_reader", dbname="postgres")
