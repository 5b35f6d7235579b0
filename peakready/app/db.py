"""PostgreSQL access: the connection pools, migrations, the seed catalogue and the queries.

Writes go through a pool on a multi-host ``target_session_attrs=read-write`` conninfo, so
after a failover new connections find the new primary by themselves. Every connection is
checked when it leaves the pool and one that turns out broken or read-only is closed, so
the pool recovers without a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from peakready.app.pool import AsyncPool, Pool, PoolExhausted

log = logging.getLogger("peakready.app.db")

# An arbitrary constant: every instance takes the same advisory lock around migrations.
MIGRATION_LOCK_KEY = 0x5EA1_0001

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE IF NOT EXISTS products (
            id integer PRIMARY KEY,
            name text NOT NULL,
            price numeric(10, 2) NOT NULL,
            stock integer NOT NULL CHECK (stock >= 0),
            initial_stock integer NOT NULL
        );
        CREATE TABLE IF NOT EXISTS orders (
            id bigserial PRIMARY KEY,
            idempotency_key text NOT NULL UNIQUE,
            product_id integer NOT NULL REFERENCES products (id),
            quantity integer NOT NULL CHECK (quantity > 0),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS orders_product_id ON orders (product_id);
        """,
    ),
    (
        2,
        # The whole order in one statement, so one round trip and the shortest possible
        # hold of the product row's lock: insert under the unique key (or find the order
        # a previous try with that key created), then take the stock, or roll back.
        """
        CREATE OR REPLACE FUNCTION place_order(p_key text, p_product integer, p_quantity integer)
        RETURNS TABLE (id bigint, product_id integer, quantity integer,
                       created_at timestamptz, created boolean, stock_left integer)
        LANGUAGE plpgsql VOLATILE AS $fn$
        #variable_conflict use_column
        DECLARE
            v_order orders%ROWTYPE;
            v_stock integer;
        BEGIN
            INSERT INTO orders AS o (idempotency_key, product_id, quantity)
            VALUES (p_key, p_product, p_quantity)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING o.* INTO v_order;
            IF NOT FOUND THEN
                -- READ COMMITTED: this statement sees the order the other try committed.
                SELECT o.* INTO v_order FROM orders o WHERE o.idempotency_key = p_key;
                RETURN QUERY SELECT v_order.id, v_order.product_id, v_order.quantity,
                                    v_order.created_at, false, NULL::integer;
                RETURN;
            END IF;
            UPDATE products p SET stock = p.stock - p_quantity
             WHERE p.id = p_product AND p.stock >= p_quantity
            RETURNING p.stock INTO v_stock;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'not enough stock for product %', p_product
                      USING ERRCODE = 'PR409';
            END IF;
            RETURN QUERY SELECT v_order.id, v_order.product_id, v_order.quantity,
                                v_order.created_at, true, v_stock;
        END
        $fn$;
        """,
    ),
    (
        3,
        # The transactional outbox (DESIGN §4): with p_outbox, the order and its outbox
        # row commit together, so an acknowledged order always reaches the relay; the
        # relay (peakready.app.relay) marks rows sent once the broker confirmed them.
        # No NOTIFY: it takes a database-wide lock at commit and serialises orders.
        # Migrations are append-only: version 2's body is repeated here with the insert.
        """
        CREATE TABLE IF NOT EXISTS outbox (
            order_id bigint PRIMARY KEY REFERENCES orders (id),
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (order_id) WHERE sent_at IS NULL;
        DROP FUNCTION IF EXISTS place_order(text, integer, integer);
        CREATE OR REPLACE FUNCTION place_order(p_key text, p_product integer, p_quantity integer,
                                               p_outbox boolean DEFAULT false)
        RETURNS TABLE (id bigint, product_id integer, quantity integer,
                       created_at timestamptz, created boolean, stock_left integer)
        LANGUAGE plpgsql VOLATILE AS $fn$
        #variable_conflict use_column
        DECLARE
            v_order orders%ROWTYPE;
            v_stock integer;
        BEGIN
            INSERT INTO orders AS o (idempotency_key, product_id, quantity)
            VALUES (p_key, p_product, p_quantity)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING o.* INTO v_order;
            IF NOT FOUND THEN
                SELECT o.* INTO v_order FROM orders o WHERE o.idempotency_key = p_key;
                RETURN QUERY SELECT v_order.id, v_order.product_id, v_order.quantity,
                                    v_order.created_at, false, NULL::integer;
                RETURN;
            END IF;
            UPDATE products p SET stock = p.stock - p_quantity
             WHERE p.id = p_product AND p.stock >= p_quantity
            RETURNING p.stock INTO v_stock;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'not enough stock for product %', p_product
                      USING ERRCODE = 'PR409';
            END IF;
            IF p_outbox THEN
                INSERT INTO outbox (order_id, payload) VALUES (v_order.id, jsonb_build_object(
                    'order_id', v_order.id, 'idempotency_key', v_order.idempotency_key,
                    'product_id', v_order.product_id, 'quantity', v_order.quantity,
                    'created_at', v_order.created_at));
            END IF;
            RETURN QUERY SELECT v_order.id, v_order.product_id, v_order.quantity,
                                v_order.created_at, true, v_stock;
        END
        $fn$;
        """,
    ),
]

OUT_OF_STOCK_SQLSTATE = "PR409"

#: The synthetic checkout's product (DESIGN §4): the probes order it, never a real one,
#: so no real stock (a flash sale's least of all) moves for a probe.
SYNTHETIC_PRODUCT_ID = 999_999
#: What customers see of the products: all but the synthetic one (the catalogue, the
#: search index, the audit's stock figures).
ON_SALE = f"id <> {SYNTHETIC_PRODUCT_ID}"
SYNTHETIC_PRODUCT_SQL = (
    "INSERT INTO products (id, name, price, stock, initial_stock)"
    " VALUES (%s, 'Synthetic checkout probe item', 0.01, 1000000000, 1000000000)"
    " ON CONFLICT (id) DO NOTHING"
)

COLOURS = ["red", "blue", "green", "black", "white", "yellow", "orange", "purple"]
NOUNS = ["Widget", "Gadget", "Gizmo", "Sprocket", "Lamp", "Kettle", "Backpack", "Mug"]


class DatabaseUnavailable(Exception):
    """No primary can serve right now (down, failing over, read-only): answer 503, retry later."""


class UnknownProduct(Exception):
    """The order names a product that does not exist."""


class OutOfStock(Exception):
    """Not enough stock left for the order."""


class KeyReused(Exception):
    """The idempotency key belongs to an order for another product or quantity."""


@dataclass(frozen=True)
class OrderResult:
    order: dict[str, Any]
    created: bool
    stock_left: int | None


def seed_name(product_id: int) -> str:
    """Deterministic product name, e.g. ``Widget 17 red``, so searches can find it."""
    noun = NOUNS[(product_id - 1) % len(NOUNS)]
    colour = COLOURS[(product_id - 1) // len(NOUNS) % len(COLOURS)]
    return f"{noun} {product_id} {colour}"


def seed_price(product_id: int) -> Decimal:
    return Decimal(499 + (product_id * 7919) % 9500) / 100


def make_pool(
    conninfo: str,
    password: str | None,
    max_size: int,
    timeout_s: float,
    name: str,
    check_timeout_s: float = 1.0,
) -> Pool:
    """A pool for threads that checks each connection on checkout and reconnects on demand."""
    return Pool(conninfo, _connect_kwargs(password), max_size, timeout_s, name, check_timeout_s)


def make_async_pool(
    conninfo: str,
    password: str | None,
    max_size: int,
    timeout_s: float,
    name: str,
    check_timeout_s: float = 1.0,
    trust_s: float = 0.0,
) -> AsyncPool:
    """:func:`make_pool` for the event loop."""
    kwargs = _connect_kwargs(password)
    return AsyncPool(conninfo, kwargs, max_size, timeout_s, name, check_timeout_s, trust_s)


def _connect_kwargs(password: str | None) -> dict[str, Any]:
    # Autocommit: single statements are their own transaction (one round trip);
    # multi-statement work opens one explicitly with conn.transaction().
    kwargs: dict[str, Any] = {"autocommit": True}
    if password is not None:
        kwargs["password"] = password
    return kwargs


def migrate(
    conninfo: str, password: str | None, seed_products: int, initial_stock: int, timeout_s: float
) -> None:
    """Apply the migrations and seed an empty catalogue, under an advisory lock.

    Several instances may start at once: the lock serialises them and every step is
    idempotent. Retries until ``timeout_s`` while the database is not reachable yet.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _migrate_once(conninfo, password, seed_products, initial_stock)
            return
        except (psycopg.OperationalError, pg_errors.ReadOnlySqlTransaction) as exc:
            if time.monotonic() > deadline:
                reason = " ".join(str(exc).split())
                raise DatabaseUnavailable(f"migrations: database unavailable: {reason}") from exc
            log.warning("migrations: database not ready (%s); retrying", " ".join(str(exc).split()))
            time.sleep(0.5)


def _migrate_once(conninfo: str, password: str | None, seed_products: int, stock: int) -> None:
    kwargs: dict[str, Any] = {"autocommit": True}
    if password is not None:
        kwargs["password"] = password
    with psycopg.connect(conninfo, **kwargs) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
            current = row[0] if row else 0
            for version, sql in MIGRATIONS:
                if version <= current:
                    continue
                with conn.transaction():
                    conn.execute(sql)  # type: ignore[arg-type]  # trusted constant
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("migrations: applied version %d", version)
            with conn.transaction():
                empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM products)").fetchone()
                if empty and empty[0] and seed_products > 0:
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO products (id, name, price, stock, initial_stock)"
                            " VALUES (%s, %s, %s, %s, %s)",
                            [
                                (i, seed_name(i), seed_price(i), stock, stock)
                                for i in range(1, seed_products + 1)
                            ],
                        )
                    log.info("seeded %d products with %d each", seed_products, stock)
                conn.execute(SYNTHETIC_PRODUCT_SQL, (SYNTHETIC_PRODUCT_ID,))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


PRODUCT_COLUMNS = "id, name, price, stock"
ORDER_COLUMNS = "id, product_id, quantity, created_at"
#: The whole order transaction (migration 2), in autocommit: its statement is the transaction.
PLACE_ORDER_SQL = "SELECT * FROM place_order(%s, %s, %s, %s)"
_DOWN = (psycopg.OperationalError, psycopg.InterfaceError, PoolExhausted)


class Store:
    """Queries of the storefront: writes (and reads that must see them) on the primary
    through an event-loop pool, catalogue reads through a thread pool (replicas first)."""

    def __init__(
        self,
        write_pool: AsyncPool,
        read_pool: Pool,
        replicas: bool,
        query_timeout_s: float,
        outbox: bool = False,
    ) -> None:
        self.write_pool = write_pool
        self.read_pool = read_pool
        self.has_read_pool = replicas
        #: Whether orders go to the back office (an outbox row in the order's transaction).
        self.outbox = outbox
        # Deadline of an order or an order read on the primary (idempotent work only).
        self.query_timeout_s = query_timeout_s

    # reads

    def list_products(self) -> list[dict[str, Any]]:
        return self._read(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE {ON_SALE} ORDER BY id", ())

    def get_product(self, product_id: int) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = %s", (product_id,))
        return rows[0] if rows else None

    def products_by_ids(self, ids: list[int]) -> list[dict[str, Any]]:
        rows = self._read(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ANY(%s)", (ids,))
        by_id = {row["id"]: row for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    async def get_order(self, order_id: int) -> dict[str, Any] | None:
        """From the primary: an acknowledged order is always visible (read-your-writes)."""
        try:
            async with (
                self.write_pool.connection(deadline_s=self.query_timeout_s) as conn,
                conn.cursor(row_factory=dict_row) as cur,
            ):
                await cur.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = %s", (order_id,))
                return await cur.fetchone()
        except _DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def ping(self, timeout_s: float) -> None:
        """One round trip to a read-write primary through the pool, or DatabaseUnavailable."""
        try:
            async with self.write_pool.connection(timeout_s, deadline_s=timeout_s) as conn:
                cur = await conn.execute(
                    "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool"
                )
                row = await cur.fetchone()
                if row and row[0]:
                    await conn.close()  # a standby or read-only server: never hand it out again
                    raise DatabaseUnavailable("connected server is read-only")
        except _DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    def ping_read(self, timeout_s: float) -> None:
        """One round trip through the read pool (replicas first), or DatabaseUnavailable."""
        try:
            with self.read_pool.connection(timeout=timeout_s) as conn:
                conn.execute("SELECT 1").fetchone()
        except _DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    # writes

    async def place_order(
        self, key: str, product_id: int, quantity: int, synthetic: bool = False
    ) -> OrderResult:
        """Create the order for ``key`` and take its stock, in one transaction; or replay it.
        A ``synthetic`` order (a probe's) is not handed to the back office."""
        try:
            async with (
                self.write_pool.connection(deadline_s=self.query_timeout_s) as conn,
                conn.cursor(row_factory=dict_row) as cur,
            ):
                try:
                    await cur.execute(
                        PLACE_ORDER_SQL, (key, product_id, quantity, self.outbox and not synthetic)
                    )
                except pg_errors.ReadOnlySqlTransaction as exc:
                    await conn.close()  # a standby (mid-failover): never hand it out again
                    raise DatabaseUnavailable(f"database is read-only: {exc}") from exc
                except psycopg.errors.DatabaseError as exc:
                    if (mapped := _order_error(exc, product_id)) is None:
                        raise
                    raise mapped from exc
                row = await cur.fetchone()
        except _DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        return order_result(row, key, product_id, quantity)

    async def audit(self, keys: list[str]) -> dict[str, Any]:
        """Orders per idempotency key and, per product, stock and units sold (from the primary)."""
        try:
            async with (
                self.write_pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                await cur.execute(
                    f"SELECT idempotency_key, {ORDER_COLUMNS} FROM orders"
                    " WHERE idempotency_key = ANY(%s)",
                    (keys,),
                )
                found = await cur.fetchall()
                await cur.execute(
                    "SELECT p.id, p.stock, p.initial_stock,"
                    " coalesce(sum(o.quantity), 0)::bigint AS sold"
                    " FROM products p LEFT JOIN orders o ON o.product_id = p.id"
                    f" WHERE p.{ON_SALE} GROUP BY p.id ORDER BY p.id"
                )
                products = await cur.fetchall()
                await cur.execute(
                    "SELECT count(*) FILTER (WHERE sent_at IS NULL) AS pending,"
                    " count(*) AS written FROM outbox"
                )
                outbox = await cur.fetchone()
        except _DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        orders: dict[str, Any] = dict.fromkeys(keys)
        per_key = dict.fromkeys(keys, 0)
        for row in found:
            key = row.pop("idempotency_key")
            row.pop("created_at")
            orders[key] = row
            per_key[key] += 1
        return {
            "orders": orders,
            "orders_per_key": per_key,
            "products": products,
            "outbox": outbox if self.outbox else None,
        }

    async def set_stock(self, product_id: int, units: int) -> dict[str, Any] | None:
        """Put ``units`` of the product on sale (on the primary); None when unknown."""
        try:
            async with (
                self.write_pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                await cur.execute(
                    "SELECT stock FROM products WHERE id = %s FOR UPDATE", (product_id,)
                )
                before = await cur.fetchone()
                await cur.execute(
                    "UPDATE products p SET stock = %s, initial_stock = %s + coalesce("
                    " (SELECT sum(o.quantity) FROM orders o WHERE o.product_id = p.id), 0)"
                    " WHERE p.id = %s RETURNING p.id, p.stock, p.initial_stock",
                    (units, units, product_id),
                )
                row = await cur.fetchone()
        except _DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        if row is None or before is None:
            return None
        sold = row["initial_stock"] - row["stock"]
        return {**row, "sold": sold, "previous_stock": before["stock"]}

    # private

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        try:
            with self.read_pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                cur.execute(sql, params)  # type: ignore[arg-type]  # built from constants
                return cur.fetchall()
        except _DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc


def place_order(
    conn: psycopg.Connection[Any], key: str, product_id: int, quantity: int, outbox: bool
) -> OrderResult:
    """The storefront's order transaction on a plain (autocommit) connection: the bench's
    direct-database path runs exactly this, so both paths do the same work."""
    with conn.cursor(row_factory=dict_row) as cur:
        try:
            cur.execute(PLACE_ORDER_SQL, (key, product_id, quantity, outbox))
        except psycopg.errors.DatabaseError as exc:
            if (mapped := _order_error(exc, product_id)) is None:
                raise
            raise mapped from exc
        row = cur.fetchone()
    return order_result(row, key, product_id, quantity)


def order_result(
    row: dict[str, Any] | None, key: str, product_id: int, quantity: int
) -> OrderResult:
    """What ``place_order()`` answered: a new order, a replay of the key's order, or an error."""
    if row is None or row["id"] is None:  # cannot happen under READ COMMITTED; be explicit
        raise DatabaseUnavailable("idempotency key conflict without a visible order")
    created, stock_left = row.pop("created"), row.pop("stock_left")
    if not created and (row["product_id"] != product_id or row["quantity"] != quantity):
        raise KeyReused(key)
    return OrderResult(row, created=created, stock_left=stock_left)


def _order_error(exc: psycopg.errors.DatabaseError, product_id: int) -> Exception | None:
    """The order outcome a database error stands for, or None (a database failure)."""
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return UnknownProduct(product_id)
    if exc.sqlstate == OUT_OF_STOCK_SQLSTATE:
        return OutOfStock(product_id)
    return None


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready copy of a row: numeric as a number, timestamps as ISO 8601 strings."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            out[key] = float(value)
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out
