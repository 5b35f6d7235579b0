"""Search: the index is rebuilt from the database, not restored; prove it can be, and time it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]

from peakready.backup.scratch import ScratchSearchd, free_port, wait_for

BATCH = 500


def drill_search(
    db_conninfo: str, work: Path, ports: range, index: str = "products", binary: str = "searchd"
) -> dict[str, Any]:
    """Rebuild ``index`` from the catalogue into a scratch searchd; compare document counts."""
    result: dict[str, Any] = {"passed": False, "reason": None, "index": index}
    try:
        with psycopg.connect(db_conninfo) as conn:
            rows = conn.execute(
                "SELECT id, name, price, stock FROM products ORDER BY id"
            ).fetchall()
    except psycopg.Error as exc:
        result["reason"] = f"search: cannot read the catalogue: {exc}".splitlines()[0][:300]
        return result
    port = free_port(ports)
    api_port = free_port(ports, taken={port})
    started = time.monotonic()
    with ScratchSearchd(work, port, api_port, index, binary) as searchd:
        conn_box: list[pymysql.connections.Connection[Any]] = []
        if not wait_for(lambda: _connect(port, conn_box), timeout=20):
            result["reason"] = f"search: scratch searchd on port {port} did not answer"
            return result
        sphinx = conn_box[0]
        try:
            with sphinx.cursor() as cursor:
                for first in range(0, len(rows), BATCH):
                    chunk = rows[first : first + BATCH]
                    cursor.execute(
                        f"REPLACE INTO {index} (id, name, price, stock) VALUES "
                        + ",".join(["(%s, %s, %s, %s)"] * len(chunk)),
                        [v for r in chunk for v in (r[0], r[1], float(r[2]), max(0, int(r[3])))],
                    )
                cursor.execute(f"SHOW INDEX {index} STATUS")
                status = {str(k): str(v) for k, v in cursor.fetchall()}
            documents = int(status.get("indexed_documents", "-1"))
        except pymysql.MySQLError as exc:
            result["reason"] = f"search: rebuild into scratch searchd failed: {exc}"[:300]
            return result
        finally:
            sphinx.close()
        result.update(
            rebuild_s=round(time.monotonic() - started, 3),
            catalogue=len(rows),
            documents=documents,
            port=port,
            searchd_pid=searchd.proc.pid if searchd.proc else None,
        )
    if documents != len(rows):
        result["reason"] = (
            f"search: rebuilt index holds {documents} documents, the catalogue {len(rows)}"
        )
    else:
        result["passed"] = True
    return result


# private


def _connect(port: int, box: list[pymysql.connections.Connection[Any]]) -> bool:
    try:
        box.append(
            pymysql.connect(
                host="127.0.0.1", port=port, user="", connect_timeout=1, autocommit=True
            )
        )
        return True
    except pymysql.MySQLError:
        return False
