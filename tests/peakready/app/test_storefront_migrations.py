"""Migrations and seeding when several instances start at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from peakready.app.db import MIGRATIONS, migrate

if TYPE_CHECKING:
    from conftest import Postgres

pytestmark = pytest.mark.lab


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
            "SELECT count(*), sum(stock), min(initial_stock) FROM products",
            dbname="shop_migrations",
        )
        assert count == [(25, 25 * 7, 7)]
        versions = postgres.execute(
            "SELECT version FROM schema_migrations ORDER BY version", dbname="shop_migrations"
        )
        assert versions == [(version,) for version, _ in MIGRATIONS]
    finally:
        postgres.execute("DROP DATABASE shop_migrations WITH (FORCE)", dbname="postgres")
