"""The worker's HTTP side: health, metrics, one order's fate, and the drills' audit.

- ``GET /healthz``: 200 while the process serves; ``GET /readyz``: 200 while it consumes.
- ``GET /metrics``: Prometheus text (:class:`peakready.backoffice.worker.Metrics`).
- ``GET /orders/{id}``: 200 ``{"order_id", "applied_at", "applied_count", "deliveries"}``
  (read on the report replica), or 404 when the order never arrived.
- ``POST /audit`` (``Authorization: Bearer <audit token>``) ``{"order_ids": [...]}``: the
  same for each id from the primary, with the queue's depth and the dead letters.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from peakready import pipeline
from peakready.backoffice.worker import connect

if TYPE_CHECKING:
    from peakready.backoffice.settings import BackofficeSettings
    from peakready.backoffice.worker import Worker

log = logging.getLogger("peakready.backoffice.server")

ORDER_PATH = re.compile(r"^/orders/(\d{1,18})$")
MAX_AUDIT_IDS = 1_000_000
ORDERS_SQL = (
    "SELECT a.order_id, a.applied_at, a.deliveries, count(s.id) AS applied_count"
    " FROM applied_orders a LEFT JOIN shipments s ON s.order_id = a.order_id"
    " WHERE a.order_id = ANY(%s) GROUP BY a.order_id"
)


def serve(settings: BackofficeSettings, worker: Worker) -> ThreadingHTTPServer:
    """The HTTP server bound to ``HOST:PORT`` (not started)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "peakready-backoffice"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self.reply(200, {"status": "ok"})
            elif self.path == "/readyz":
                ready = worker.ready
                self.reply(200 if ready else 503, {"ready": ready})
            elif self.path == "/metrics":
                self.send(200, generate_latest(worker.metrics.registry), CONTENT_TYPE_LATEST)
            elif match := ORDER_PATH.match(self.path):
                self.order(int(match.group(1)))
            else:
                self.reply(404, {"detail": "not found"})

        def do_POST(self) -> None:
            if self.path != "/audit":
                self.reply(404, {"detail": "not found"})
                return
            token = settings.audit_token.get_secret_value() if settings.audit_token else ""
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if not token or not hmac.compare_digest(given.encode(), token.encode()):
                self.reply(401, {"detail": "audit token required"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(min(length, 64 * 1024 * 1024)))
                ids = [int(i) for i in body["order_ids"]][:MAX_AUDIT_IDS]
            except (ValueError, KeyError, TypeError):
                self.reply(422, {"detail": 'expected {"order_ids": [integer, ...]}'})
                return
            try:
                self.reply(200, audit(settings, ids))
            except psycopg.Error as exc:
                self.reply(503, {"detail": f"back-office database: {type(exc).__name__}"})

        def order(self, order_id: int) -> None:
            try:
                with connect(settings.report_dsn or settings.db_dsn, settings) as conn:
                    rows = conn.execute(ORDERS_SQL, ([order_id],)).fetchall()
            except psycopg.Error as exc:
                self.reply(503, {"detail": f"back-office database: {type(exc).__name__}"})
                return
            if not rows:
                self.reply(404, {"detail": f"order {order_id} has not reached the back office"})
                return
            self.reply(200, order_row(rows[0]))

        def reply(self, status: int, data: dict[str, Any]) -> None:
            self.send(status, json.dumps(data).encode(), "application/json")

        def send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((settings.host, settings.port), Handler)
    server.daemon_threads = True
    return server


def order_row(row: tuple[Any, ...]) -> dict[str, Any]:
    order_id, applied_at, deliveries, applied_count = row
    return {
        "order_id": order_id,
        "applied_at": applied_at.isoformat(),
        "applied_count": int(applied_count),
        "deliveries": int(deliveries),
    }


def audit(settings: BackofficeSettings, ids: list[int]) -> dict[str, Any]:
    """Each order's fate (primary), the queue's depth and the dead letters."""
    with connect(settings.db_dsn, settings) as conn:
        rows = conn.execute(ORDERS_SQL, (ids,)).fetchall()
        dead = conn.execute(
            "SELECT message_id, reason, at FROM dead_letters ORDER BY id DESC LIMIT 100"
        ).fetchall()
        recorded = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    found = {str(r[0]): order_row(r) for r in rows}
    return {
        "orders": {str(i): found.get(str(i)) for i in ids},
        "dead_letters": [
            {"message_id": m, "reason": reason, "at": at.isoformat()} for m, reason, at in dead
        ],
        "dead_letters_recorded": recorded[0] if recorded else 0,
        **queue_depths(settings),
    }


def queue_depths(settings: BackofficeSettings) -> dict[str, int | None]:
    """Messages waiting in the queue and in its dead-letter queue (None: broker away)."""
    import pika
    import pika.exceptions

    spec = settings.queue()
    password = settings.queue_password.get_secret_value() if settings.queue_password else ""
    params = pipeline.connection_parameters(
        pipeline.parse_urls(settings.queue_url, "QUEUE_URL"), password
    )
    try:
        amqp = pika.BlockingConnection(params)
    except (pika.exceptions.AMQPError, OSError):
        return {"queue_messages": None, "dead_letter_messages": None}
    try:
        channel = amqp.channel()
        depth = channel.queue_declare(spec.name, passive=True).method.message_count
        dead = (
            channel.queue_declare(spec.dead_letter_queue, passive=True).method.message_count
            if spec.dead_letter
            else 0
        )
        return {"queue_messages": int(depth), "dead_letter_messages": int(dead)}
    except pika.exceptions.AMQPError:
        return {"queue_messages": None, "dead_letter_messages": None}
    finally:
        if amqp.is_open:
            amqp.close()
