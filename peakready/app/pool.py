"""A small connection pool that fails fast and reconnects at once.

psycopg_pool retries a failed connection attempt in the background with an exponential
back-off (1 s, 2 s, 4 s, …): after a 20 s failover the app would come back up to ~16 s
after the database. Here there is no background work: a request takes an idle
connection, checks it with one round trip (discarding it when broken), or opens a new
one right away on the conninfo, which finds the current read-write primary by itself.
So the first request after a failover already reaches the new primary.

The check has a client-side deadline: a frozen server (an AZ "power loss" in the lab)
still holds its TCP connections open, and a plain round trip would hang until it thaws.
When a check fails, every idle connection to the same server is dropped with it.
"""

from __future__ import annotations

import select
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq


class PoolExhausted(Exception):
    """No connection slot came free within the pool timeout."""


class Pool:
    """At most ``max_size`` connections in use; idle ones are reused newest first."""

    def __init__(
        self,
        conninfo: str,
        kwargs: dict[str, Any],
        max_size: int,
        timeout_s: float,
        name: str,
        check_timeout_s: float = 1.0,
    ) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.max_size = max_size
        self.timeout_s = timeout_s
        self.name = name
        self.check_timeout_s = check_timeout_s
        self._slots = threading.BoundedSemaphore(max_size)
        self._idle: deque[psycopg.Connection[Any]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def idle(self) -> int:
        return len(self._idle)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection for the block; rolled back and returned (or dropped) after."""
        wait = self.timeout_s if timeout is None else timeout
        if not self._slots.acquire(timeout=wait):
            raise PoolExhausted(f"pool {self.name}: no connection free within {wait:.1f}s")
        conn: psycopg.Connection[Any] | None = None
        with self._lock:
            self._in_use += 1
        try:
            conn = self._checkout()
            yield conn
        finally:
            if conn is not None:
                self._checkin(conn)
            with self._lock:
                self._in_use -= 1
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
            server = _server(conn)
            try:
                check_alive(conn, self.check_timeout_s)
                return conn
            except psycopg.Error:
                conn.close()  # broken, frozen, restarted, failed over
                self._drop_idle(server)

    def _drop_idle(self, server: tuple[str, int] | None) -> None:
        with self._lock:
            dropped = [c for c in self._idle if c.closed or _server(c) == server]
            self._idle = deque(c for c in self._idle if c not in dropped)
        for conn in dropped:
            conn.close()

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


class CheckTimeout(psycopg.OperationalError):
    """The server did not answer the liveness round trip in time."""


def check_alive(conn: psycopg.Connection[Any], timeout_s: float) -> None:
    """One empty-query round trip within ``timeout_s``, or a :class:`psycopg.Error`."""
    if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise psycopg.OperationalError("connection is not idle")
    pgconn = conn.pgconn
    pgconn.send_query(b"")
    deadline = time.monotonic() + timeout_s
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise CheckTimeout(f"no answer from the server within {timeout_s:.1f}s")
        select.select([pgconn.socket], [], [], left)
    while (result := pgconn.get_result()) is not None:
        if result.status not in (pq.ExecStatus.EMPTY_QUERY, pq.ExecStatus.COMMAND_OK):
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise psycopg.OperationalError(f"liveness check failed: {message}")


def _server(conn: psycopg.Connection[Any]) -> tuple[str, int] | None:
    try:
        return (conn.info.host, conn.info.port)
    except psycopg.Error:
        return None
