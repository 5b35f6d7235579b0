"""Search: the index is rebuilt from the database, not restored; prove it can be, and time it.

The rebuild uses the storefront's own index definition and feeder
(``peakready.app.search.sphinx_index_config`` / ``feed_sphinx``, docs/internals.md), so
it exercises the path a real recovery would take.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]

from peakready.backup.scratch import ScratchSearchd, free_port, wait_for


def drill_search(
    db_conninfo: str, work: Path, ports: range, index: str = "products_rt", binary: str = "searchd"
) -> dict[str, Any]:
    """Rebuild ``index`` from the catalogue into a scratch searchd; compare document counts."""
    # Imported here: pymysql only when the search drill runs.
    from peakready.app.db import ON_SALE
    from peakready.app.search import feed_sphinx

    result: dict[str, Any] = {"passed": False, "reason": None, "index": index}
    port = free_port(ports)
    api_port = free_port(ports, taken={port})
    try:
        with (
            psycopg.connect(db_conninfo) as conn,
            ScratchSearchd(work, port, api_port, index, binary) as searchd,
        ):
            row = conn.execute(
                f"SELECT count(*), min(name) FROM products WHERE {ON_SALE}"
            ).fetchone()
            catalogue, sample = (int(row[0]), str(row[1] or "")) if row else (0, "")
            if not wait_for(lambda: _answers(port), timeout=20):
                result["reason"] = f"search: scratch searchd on port {port} did not answer"
                return result
            started = time.monotonic()
            fed = feed_sphinx([("127.0.0.1", port)], index, conn)
            result["rebuild_s"] = round(time.monotonic() - started, 3)
            documents, hits = _count(port, index, sample)
            result.update(
                catalogue=catalogue,
                fed=fed,
                documents=documents,
                sample_query=sample.split()[0] if sample.split() else "",
                sample_hits=hits,
                port=port,
                searchd_pid=searchd.proc.pid if searchd.proc else None,
            )
    except psycopg.Error as exc:
        result["reason"] = f"search: cannot read the catalogue: {exc}".splitlines()[0][:300]
        return result
    except (pymysql.MySQLError, OSError) as exc:
        result["reason"] = f"search: rebuild into scratch searchd failed: {exc}"[:300]
        return result
    if documents != catalogue:
        result["reason"] = (
            f"search: rebuilt index holds {documents} documents, the catalogue {catalogue}"
        )
    elif catalogue and not hits:
        result["reason"] = f"search: rebuilt index finds nothing for {result['sample_query']!r}"
    else:
        result["passed"] = True
    return result


# private


def _connect(port: int) -> Any:
    return pymysql.connect(host="127.0.0.1", port=port, user="", connect_timeout=1, autocommit=True)


def _answers(port: int) -> bool:
    try:
        _connect(port).close()
        return True
    except pymysql.MySQLError:
        return False


def _count(port: int, index: str, sample: str) -> tuple[int, int]:
    """Documents in ``index`` and hits for the first word of ``sample``."""
    sphinx = _connect(port)
    try:
        with sphinx.cursor() as cursor:
            cursor.execute(f"SHOW INDEX {index} STATUS")
            status = {str(k): str(v) for k, v in cursor.fetchall()}
            hits = 0
            word = sample.split()[0] if sample.split() else ""
            if word:
                cursor.execute(f"SELECT id FROM {index} WHERE MATCH(%s) LIMIT 1000", (word,))
                hits = len(cursor.fetchall())
    finally:
        sphinx.close()
    return int(status.get("indexed_documents", "-1")), hits
