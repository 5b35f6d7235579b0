"""Product search behind one small interface: SphinxQL (lab) and OpenSearch (AWS).

``search(q)`` answers a list of hits ``{"id", "name", "price"}`` in relevance order or
raises :class:`~peakready.app.guard.DependencyDown`; the app then answers 503 at once.
:func:`feed_sphinx` fills the RT index of each searchd from the database (the lab calls
it at ``lab up``); :func:`sphinx_index_config` renders the matching index definition.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import psycopg
import pymysql  # type: ignore[import-untyped]

from peakready.app.db import ON_SALE
from peakready.app.guard import BoundedRunner, DependencyDown, DependencyGuard

MAX_HITS = 20
_WORD = re.compile(r"[A-Za-z0-9]+")


def query_words(q: str) -> str:
    """The query reduced to plain words: no full-text operator can reach the engine."""
    return " ".join(_WORD.findall(q))[:200]


class SearchBackend(Protocol):
    name: str

    def search(self, q: str) -> list[dict[str, Any]]: ...

    def check(self) -> None:
        """One query, bounded by the dependency timeout; raises when search cannot answer."""
        ...


class NoSearch:
    """No search tier configured: every search is "unavailable"."""

    name = "none"

    def search(self, q: str) -> list[dict[str, Any]]:
        raise DependencyDown("no search backend configured")

    def check(self) -> None:
        raise DependencyDown("no search backend configured")


class SphinxSearch:
    """SphinxQL over the MySQL protocol: hosts tried in order, each skipped while down."""

    name = "sphinx"

    def __init__(
        self,
        hosts: Sequence[tuple[str, int]],
        index: str,
        runner: BoundedRunner,
        guard: DependencyGuard,
        timeout_s: float,
        backoff_s: float,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", index):
            raise ValueError(f"search index name {index!r}: expected letters, digits, _")
        self.hosts = list(hosts)
        self.index = index
        self.runner = runner
        self.guard = guard
        self.timeout_s = timeout_s
        # A frozen host accepts connections and never answers: no single host may take
        # the whole bound, so two attempts always fit in it.
        attempt_s = 0.45 * timeout_s
        self.nodes = [SphinxNode(h, p, attempt_s) for h, p in self.hosts]
        self.host_guards = [
            DependencyGuard(f"searchd {h}:{p}", attempt_s, backoff_s) for h, p in self.hosts
        ]

    def search(self, q: str) -> list[dict[str, Any]]:
        words = query_words(q)
        if not words:
            return []
        return self.runner.call(self.guard, lambda: self._search_hosts(words))

    def check(self) -> None:
        """Query every node (a background probe): refreshes each node's state and keeps a
        warm connection to each, so that failing over to the next node costs one round trip.
        """
        errors: list[str] = []
        for node, guard in zip(self.nodes, self.host_guards, strict=True):
            try:
                node.query(self.index, "ping")
            except (pymysql.MySQLError, OSError) as exc:
                guard.mark_down(str(exc))
                errors.append(f"{node.host}:{node.port}: {exc}")
            else:
                guard.mark_up()
        if len(errors) == len(self.nodes):
            raise DependencyDown("search: " + "; ".join(errors))

    # private

    def _search_hosts(self, words: str) -> list[dict[str, Any]]:
        """Hosts in order, skipping those backing off; a failed host backs off."""
        deadline = time.monotonic() + 0.9 * self.timeout_s
        errors: list[str] = []
        candidates = [
            (node, guard)
            for node, guard in zip(self.nodes, self.host_guards, strict=True)
            if not guard.backing_off
        ] or list(zip(self.nodes, self.host_guards, strict=True))
        for node, guard in candidates:
            if deadline - time.monotonic() < 0.01:
                break
            try:
                hits = node.query(self.index, words)
            except (pymysql.MySQLError, OSError) as exc:
                guard.mark_down(str(exc))
                errors.append(f"{node.host}:{node.port}: {exc}")
                continue
            guard.mark_up()
            return hits
        raise DependencyDown("search: " + ("; ".join(errors) or "no host answered in time"))


class SphinxNode:
    """One searchd: a few kept-alive SphinxQL connections (one round trip per query)."""

    KEEP = 4
    MAX_IDLE_S = 60.0  # well below searchd's sphinxql_timeout (900 s)

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._idle: list[tuple[float, pymysql.connections.Connection]] = []
        self._lock = threading.Lock()

    def query(self, index: str, words: str) -> list[dict[str, Any]]:
        conn = self._take()
        if conn is not None:
            try:
                return self._run(conn, index, words)
            except (pymysql.MySQLError, OSError) as exc:
                if "timed out" in str(exc):
                    raise  # a frozen host: do not pay the timeout twice
                # else the server closed an idle connection: one fresh try below
        return self._run(sphinx_connect(self.host, self.port, self.timeout_s), index, words)

    def _run(
        self, conn: pymysql.connections.Connection, index: str, words: str
    ) -> list[dict[str, Any]]:
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT id, title, price FROM {index} WHERE MATCH(%s) LIMIT {MAX_HITS}",
                    (words,),
                )
                rows = cur.fetchall()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        self._give(conn)
        return [{"id": int(r[0]), "name": str(r[1]), "price": round(float(r[2]), 2)} for r in rows]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    def _take(self) -> pymysql.connections.Connection | None:
        with self._lock:
            while self._idle:
                since, conn = self._idle.pop()
                if time.monotonic() - since < self.MAX_IDLE_S:
                    return conn
                with contextlib.suppress(Exception):
                    conn.close()
        return None

    def _give(self, conn: pymysql.connections.Connection) -> None:
        with self._lock:
            if len(self._idle) < self.KEEP:
                self._idle.append((time.monotonic(), conn))
                return
        with contextlib.suppress(Exception):
            conn.close()


def sphinx_connect(
    host: str, port: int, timeout_s: float, autocommit: bool | None = None
) -> pymysql.connections.Connection:
    """A SphinxQL connection whose every network wait is bounded by ``timeout_s``."""
    return pymysql.connect(
        host=host,
        port=port,
        user="",
        connect_timeout=max(timeout_s, 0.01),
        read_timeout=max(timeout_s, 0.01),
        write_timeout=max(timeout_s, 0.01),
        autocommit=autocommit,  # None: no extra SET AUTOCOMMIT round trip
    )


def sphinx_query(
    host: str, port: int, index: str, words: str, timeout_s: float
) -> list[dict[str, Any]]:
    """One query on a fresh connection (tools and tests; the app keeps connections)."""
    node = SphinxNode(host, port, timeout_s)
    try:
        return node.query(index, words)
    finally:
        node.close()


class OpenSearchSearch:
    """OpenSearch over plain HTTP JSON (the AWS search domain)."""

    name = "opensearch"

    def __init__(
        self,
        url: str,
        index: str,
        runner: BoundedRunner,
        guard: DependencyGuard,
        timeout_s: float,
        client: httpx.Client | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", index):
            raise ValueError(f"search index name {index!r}: expected lower-case letters, digits")
        self.url = url.rstrip("/")  # basic-auth credentials may ride in the URL's userinfo
        self.index = index
        self.runner = runner
        self.guard = guard
        self.client = client or httpx.Client(timeout=timeout_s)

    def search(self, q: str) -> list[dict[str, Any]]:
        words = query_words(q)
        if not words:
            return []
        return self.runner.call(self.guard, lambda: self._search(words))

    def check(self) -> None:
        self.client.get(self.url).raise_for_status()

    def _search(self, words: str) -> list[dict[str, Any]]:
        body = {"size": MAX_HITS, "query": {"match": {"name": {"query": words, "operator": "and"}}}}
        response = self.client.post(f"{self.url}/{self.index}/_search", json=body)
        response.raise_for_status()
        return [
            {
                "id": int(hit["_id"]),
                "name": hit["_source"]["name"],
                "price": float(hit["_source"]["price"]),
            }
            for hit in response.json()["hits"]["hits"]
        ]


# feeding the index


def sphinx_index_config(index: str, path: str) -> str:
    """The ``index`` section of sphinx.conf that :func:`feed_sphinx` and the app expect."""
    return (
        f"index {index}\n{{\n"
        "    type = rt\n"
        f"    path = {path}\n"
        "    rt_field = name\n"
        "    rt_attr_string = title\n"
        "    rt_attr_float = price\n"
        "}\n"
    )


def feed_sphinx(
    hosts: Sequence[tuple[str, int]],
    index: str,
    conn: psycopg.Connection[Any],
    timeout_s: float = 5.0,
) -> int:
    """Load every product from ``conn`` into the RT ``index`` of each searchd in ``hosts``.

    Uses ``REPLACE``, so it is idempotent and can refresh a running index. Returns the
    number of products written per host; a host that does not answer raises
    ``pymysql.MySQLError`` or ``OSError``.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", index):
        raise ValueError(f"search index name {index!r}: expected letters, digits, _")
    rows = conn.execute(
        f"SELECT id, name, price FROM products WHERE {ON_SALE} ORDER BY id"
    ).fetchall()
    for host, port in hosts:
        sphinx = sphinx_connect(host, port, timeout_s, autocommit=True)
        try:
            with sphinx.cursor() as cur:
                for start in range(0, len(rows), 500):
                    batch = rows[start : start + 500]
                    values = ", ".join(["(%s, %s, %s, %s)"] * len(batch))
                    params: list[Any] = []
                    for product_id, name, price in batch:
                        params += [product_id, name, name, float(price)]
                    cur.execute(
                        f"REPLACE INTO {index} (id, name, title, price) VALUES {values}", params
                    )
        finally:
            sphinx.close()
    return len(rows)
