"""Small connection pools that fail fast and reconnect at once.

psycopg_pool retries a failed connection attempt in the background with an exponential
back-off (1 s, 2 s, 4 s, …): after a 20 s failover the app would come back up to ~16 s
after the database. Here there is no background work: a request takes an idle
connection, checks it with one round trip (discarding it when broken), or opens a new
one right away on the conninfo, which finds the current read-write primary by itself.
So the first request after a failover already reaches the new primary.

The check has a client-side deadline: a frozen server (an AZ "power loss" in the lab)
still holds its TCP connections open, and a plain round trip would hang until it thaws.
When a check fails, every idle connection to the same server is dropped with it.

:class:`Pool` serves threads (the read endpoints); :class:`AsyncPool` serves the event
loop (the order path, which so skips the thread-pool hand-off). Both keep the same
rules; only the waiting differs, and one thing more on the event loop: a block given a
deadline (an order) skips the check when its server answered a query on another
connection within the last ``trust_s`` (0.1 s). Under load a server proves itself alive
many times a second, and the check's round trip cost 15 % of an order's CPU (1,360
against 1,570 orders/s on the lab). A server that froze since is caught by the deadline
instead; a connection that fails in use is closed and its server distrusted at once.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import pq

C = TypeVar("C", psycopg.Connection[Any], psycopg.AsyncConnection[Any])


_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


class PoolExhausted(Exception):
    """No connection slot came free within the pool timeout."""


class CheckTimeout(psycopg.OperationalError):
    """The server did not answer the liveness round trip in time."""


class QueryTimeout(psycopg.OperationalError):
    """The server did not answer within the block's deadline; the connection was cut."""


class _Idle(Generic[C]):
    """The idle connections of a pool, newest last, and what the pool knows of its size."""

    def __init__(self, max_size: int, timeout_s: float, name: str, check_timeout_s: float) -> None:
        self.max_size = max_size
        self.timeout_s = timeout_s
        self.name = name
        self.check_timeout_s = check_timeout_s
        self._idle: deque[C] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def idle(self) -> int:
        return len(self._idle)

    def _exhausted(self, wait: float) -> PoolExhausted:
        return PoolExhausted(f"pool {self.name}: no connection free within {wait:.1f}s")

    def _count(self, delta: int) -> None:
        with self._lock:
            self._in_use += delta

    def _pop(self) -> C | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _take_all(self) -> list[C]:
        self._closed = True
        with self._lock:
            idle, self._idle = list(self._idle), deque()
        return idle

    def _drop_idle(self, server: tuple[str, int] | None) -> list[C]:
        """Take out the idle connections to ``server`` (and closed ones); the caller closes them."""
        with self._lock:
            dropped = [c for c in self._idle if c.closed or _server(c) == server]
            self._idle = deque(c for c in self._idle if c not in dropped)
        return dropped

    def _keep(self, conn: C) -> bool:
        """Put ``conn`` back unless it or the pool is closed; False: the caller closes it."""
        if conn.closed or self._closed:
            return False
        with self._lock:
            self._idle.append(conn)
        return True


class Pool(_Idle[psycopg.Connection[Any]]):
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
        super().__init__(max_size, timeout_s, name, check_timeout_s)
        self.conninfo = conninfo
        self.kwargs = kwargs
        self._slots = threading.BoundedSemaphore(max_size)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection for the block; rolled back and returned (or dropped) after."""
        wait = self.timeout_s if timeout is None else timeout
        if not self._slots.acquire(timeout=wait):
            raise self._exhausted(wait)
        conn: psycopg.Connection[Any] | None = None
        self._count(+1)
        try:
            conn = self._checkout()
            yield conn
        finally:
            if conn is not None:
                self._checkin(conn)
            self._count(-1)
            self._slots.release()

    def warm(self, count: int) -> int:
        """Open up to ``count`` idle connections now (an instance's warm-up); stops at the
        first failure. Returns how many are idle."""
        while self.idle < min(count, self.max_size):
            try:
                conn = psycopg.connect(self.conninfo, **self.kwargs)
            except psycopg.Error:
                break
            if not self._keep(conn):
                conn.close()
                break
        return self.idle

    def close(self) -> None:
        for conn in self._take_all():
            conn.close()

    # private

    def _checkout(self) -> psycopg.Connection[Any]:
        while (conn := self._pop()) is not None:
            server = _server(conn)
            try:
                check_alive(conn, self.check_timeout_s)
                return conn
            except psycopg.Error:
                conn.close()  # broken, frozen, restarted, failed over
                for other in self._drop_idle(server):
                    other.close()
        return psycopg.connect(self.conninfo, **self.kwargs)

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        state = _state(conn)
        if state == "rollback":
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()
        if state == "broken" or not self._keep(conn):
            conn.close()


class AsyncPool(_Idle[psycopg.AsyncConnection[Any]]):
    """:class:`Pool` for the event loop: the same rules, awaited instead of blocking."""

    def __init__(
        self,
        conninfo: str,
        kwargs: dict[str, Any],
        max_size: int,
        timeout_s: float,
        name: str,
        check_timeout_s: float = 1.0,
        trust_s: float = 0.0,
    ) -> None:
        super().__init__(max_size, timeout_s, name, check_timeout_s)
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.trust_s = trust_s
        self._answered: dict[tuple[str, int] | None, float] = {}  # server → last answer
        self._slots = asyncio.BoundedSemaphore(max_size)

    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None, deadline_s: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A checked connection for the block; rolled back and returned (or dropped) after.

        With ``deadline_s``, a block still waiting on the server after that long has the
        connection's socket cut under it: it fails with :class:`QueryTimeout` instead of
        waiting for a frozen server to thaw, and the idle connections to that server are
        dropped. (Cancelling the wait instead would make psycopg send a cancel request and
        wait for the answer — from the frozen server.) The server may still finish the
        work; that is why only idempotent work takes a deadline.
        """
        wait = self.timeout_s if timeout is None else timeout
        if self._slots.locked():  # else acquire() returns at once: no timer needed
            try:
                async with asyncio.timeout(wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise self._exhausted(wait) from None
        else:
            await self._slots.acquire()
        conn: psycopg.AsyncConnection[Any] | None = None
        failed = False
        self._count(+1)
        try:
            # Only a block with a deadline may skip the check: the deadline is what
            # catches a server that froze since it last answered.
            conn, server = await self._checkout(trust=deadline_s is not None)
            watchdog = _Watchdog(conn, deadline_s)
            try:
                yield conn
            except _CONNECTION_ERRORS as exc:
                failed = True
                if watchdog.fired:
                    for other in self._drop_idle(server):
                        await other.close()
                    raise QueryTimeout(f"no answer from the server within {deadline_s}s") from exc
                raise
            finally:
                watchdog.cancel()
                if watchdog.fired:
                    await conn.close()  # cut, even if the block finished meanwhile
                self._used(server, conn, failed)
        finally:
            if conn is not None:
                await self._checkin(conn)
            self._count(-1)
            self._slots.release()

    async def warm(self, count: int) -> int:
        """:meth:`Pool.warm`, the connections opened side by side."""
        connect = psycopg.AsyncConnection.connect
        missing = min(count, self.max_size) - self.idle
        opened = await asyncio.gather(
            *(connect(self.conninfo, **self.kwargs) for _ in range(missing)),
            return_exceptions=True,
        )
        for conn in opened:
            if isinstance(conn, psycopg.AsyncConnection) and not self._keep(conn):
                await conn.close()
        return self.idle

    async def close(self) -> None:
        for conn in self._take_all():
            await conn.close()

    # private

    async def _checkout(
        self, trust: bool
    ) -> tuple[psycopg.AsyncConnection[Any], tuple[str, int] | None]:
        """A usable connection and its server."""
        while (conn := self._pop()) is not None:
            server = _server(conn)
            if trust and self._trusted(server):
                return conn, server
            try:
                await check_alive_async(conn, self.check_timeout_s)
                return conn, server
            except psycopg.Error:
                await conn.close()  # broken, frozen, restarted, failed over
                for other in self._drop_idle(server):
                    await other.close()
        conn = await psycopg.AsyncConnection.connect(self.conninfo, **self.kwargs)
        return conn, _server(conn)

    def _trusted(self, server: tuple[str, int] | None) -> bool:
        """True when ``server`` answered a query within ``trust_s``."""
        answered = self._answered.get(server)
        return answered is not None and time.monotonic() - answered < self.trust_s

    def _used(
        self, server: tuple[str, int] | None, conn: psycopg.AsyncConnection[Any], failed: bool
    ) -> None:
        """Remember that ``server`` answered, or forget it ever did when the connection
        failed in use (or was closed as unusable: read-only, broken)."""
        if failed or conn.closed:
            self._answered.pop(server, None)
        else:
            self._answered[server] = time.monotonic()

    async def _checkin(self, conn: psycopg.AsyncConnection[Any]) -> None:
        state = _state(conn)
        if state == "rollback":
            try:
                await conn.rollback()
            except psycopg.Error:
                await conn.close()
        if state == "broken" or not self._keep(conn):
            await conn.close()


class _Watchdog:
    """Cuts a connection's socket when its deadline passes (see AsyncPool.connection)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], deadline_s: float | None) -> None:
        self.conn = conn
        self.fired = False
        self._timer = (
            asyncio.get_running_loop().call_later(deadline_s, self._fire)
            if deadline_s is not None
            else None
        )

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        try:
            # A duplicate of the descriptor shares the socket: shutting it down makes the
            # driver's pending read see the connection closed.
            with socket.socket(fileno=os.dup(self.conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            pass  # already closed


def check_alive(conn: psycopg.Connection[Any], timeout_s: float) -> None:
    """One empty-query round trip within ``timeout_s``, or a :class:`psycopg.Error`."""
    deadline = time.monotonic() + timeout_s
    for sock in _check(conn):
        left = deadline - time.monotonic()
        if left <= 0:
            raise CheckTimeout(f"no answer from the server within {timeout_s:.1f}s")
        select.select([sock], [], [], left)


async def check_alive_async(conn: psycopg.AsyncConnection[Any], timeout_s: float) -> None:
    """:func:`check_alive` on the event loop: waits for the socket without blocking it."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            for sock in _check(conn):
                readable = loop.create_future()
                loop.add_reader(sock, readable.set_result, None)
                try:
                    await readable
                finally:
                    loop.remove_reader(sock)
    except TimeoutError:
        raise CheckTimeout(f"no answer from the server within {timeout_s:.1f}s") from None


# private


def _check(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
) -> Generator[int, None, None]:
    """Send an empty query; yield the socket while the answer is pending; check it."""
    if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise psycopg.OperationalError("connection is not idle")
    pgconn = conn.pgconn
    pgconn.send_query(b"")
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            break
        yield pgconn.socket
    while (result := pgconn.get_result()) is not None:
        if result.status not in (pq.ExecStatus.EMPTY_QUERY, pq.ExecStatus.COMMAND_OK):
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise psycopg.OperationalError(f"liveness check failed: {message}")


def _state(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> str:
    """What a returned connection needs: "ok", "rollback", or "broken" (close it)."""
    if conn.closed:
        return "broken"
    status = conn.info.transaction_status
    if status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
        return "rollback"
    # Unknown or active: the connection cannot be trusted.
    return "ok" if status == pq.TransactionStatus.IDLE else "broken"


def _server(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> tuple[str, int] | None:
    try:
        return (conn.info.host, conn.info.port)
    except psycopg.Error:
        return None
