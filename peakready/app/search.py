"""Product search behind one small interface: SphinxQL (lab) and OpenSearch (AWS).

``search(q)`` answers a list of hits ``{"id", "name", "price"}`` in relevance order or
raises :class:`~peakready.app.guard.DependencyDown`; the app then answers 503 at once.
:func:`feed_sphinx` fills the RT index of each searchd from the database (the lab calls
it at ``lab up``); :func:`sphinx_index_config` renders the matching index definition.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import psycopg
import pymysql  # type: ignore[import-untyped]

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
        self.host_guards = [
            DependencyGuard(f"searchd {h}:{p}", timeout_s, backoff_s) for h, p in self.hosts
        ]

    def search(self, q: str) -> list[dict[str, Any]]:
        words = query_words(q)
        if not words:
            return []
        return self.runner.call(self.guard, lambda: self._search_hosts(words))

    def check(self) -> None:
        self._search_hosts("ping")

    # private

    def _search_hosts(self, words: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.timeout_s
        errors: list[str] = []
        candidates = [
            (host, guard)
            for host, guard in zip(self.hosts, self.host_guards, strict=True)
            if not guard.backing_off
        ] or list(zip(self.hosts, self.host_guards, strict=True))
        for (host, port), guard in candidates:
            left = deadline - time.monotonic()
            if left <= 0.01:
                break
            try:
                hits = sphinx_query(host, port, self.index, words, left)
            except (pymysql.MySQLError, OSError) as exc:
                guard.mark_down(str(exc))
                errors.append(f"{host}:{port}: {exc}")
                continue
            guard.mark_up()
            return hits
        raise DependencyDown("search: " + ("; ".join(errors) or "no host answered in time"))


def sphinx_connect(host: str, port: int, timeout_s: float) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=host,
        port=port,
        user="",
        connect_timeout=max(timeout_s, 0.01),
        read_timeout=max(timeout_s, 0.01),
        write_timeout=max(timeout_s, 0.01),
        autocommit=True,
    )


def sphinx_query(
    host: str, port: int, index: str, words: str, timeout_s: float
) -> list[dict[str, Any]]:
    conn = sphinx_connect(host, port, timeout_s)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT id, title, price FROM {index} WHERE MATCH(%s) LIMIT {MAX_HITS}",
                (words,),
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    return [{"id": int(r[0]), "name": str(r[1]), "price": round(float(r[2]), 2)} for r in rows]


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
    rows = conn.execute("SELECT id, name, price FROM products ORDER BY id").fetchall()
    for host, port in hosts:
        sphinx = sphinx_connect(host, port, timeout_s)
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
