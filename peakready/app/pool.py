"""A small connection pool that fails fast and reconnects at once.

psycopg_pool retries a failed connection attempt in the background with an exponential
back-off (1 s, 2 s, 4 s, …): after a 20 s failover the app would come back up to ~16 s
after the database. Here there is no background work: a request takes an idle
connection, checks it with one round trip (discarding it when broken), or opens a new
one right away on the conninfo, which finds the current read-write primary by itself.
So the first request after a failover already reaches the new primary.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool


class PoolExhausted(Exception):
    """No connection slot came free within the pool timeout."""


class Pool:
    """At most ``max_size`` connections in use; idle ones are reused newest first."""

    def __init__(
        self, conninfo: str, kwargs: dict[str, Any], max_size: int, timeout_s: float, name: str
    ) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.max_size = max_size
        self.timeout_s = timeout_s
        self.name = name
        self._slots = threading.BoundedSemaphore(max_size)
        self._idle: deque[psycopg.Connection[Any]] = deque()
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection for the block; rolled back and returned (or dropped) after."""
        wait = self.timeout_s if timeout is None else timeout
        if not self._slots.acquire(timeout=wait):
            raise PoolExhausted(f"pool {self.name}: no connection free within {wait:.1f}s")
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = self._checkout()
            yield conn
        finally:
            if conn is not None:
                self._checkin(conn)
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            conn.close()

    # private

    def _checkout(self) -> psycopg.Connection[Any]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return psycopg.connect(self.conninfo, **self.kwargs)
            try:
                ConnectionPool.check_connection(conn)
                return conn
            except psycopg.Error:
                conn.close()  # broken (server restarted, failed over): try the next one

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.closed:
            status = conn.info.transaction_status
            if status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
            elif status != pq.TransactionStatus.IDLE:
                conn.close()  # unknown or active: the connection cannot be trusted
        if conn.closed or self._closed:
            conn.close()
            return
        with self._lock:
            self._idle.append(conn)
