"""The outbox relay: orders from the shop's ``outbox`` table to the broker, confirmed.

Each storefront instance runs one relay thread. It takes a batch of unsent rows with
``FOR UPDATE SKIP LOCKED`` (so several relays share the work and never send a row at
the same time), publishes each as a persistent message with publisher confirms, and
marks the confirmed ones sent in the same transaction. A relay that dies mid-batch
rolls back: its rows go out again, which the back office's idempotent apply absorbs
(at least once on the wire, exactly once in effect). An idle relay looks again after
``idle_s`` (no ``NOTIFY``: it would take a database-wide lock at every order's commit).
A broker outage only grows the outbox; the order path never waits for the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from peakready import pipeline

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel

    from peakready.app.metrics import Metrics

log = logging.getLogger("peakready.app.relay")

#: How often an idle relay counts the unsent rows (its outbox_pending gauge).
COUNT_EVERY_S = 5.0
UNSENT_SQL = (
    "SELECT order_id, payload FROM outbox WHERE sent_at IS NULL"
    " ORDER BY order_id LIMIT %s FOR UPDATE SKIP LOCKED"
)


class Relay:
    """One relay thread: :meth:`start` it, :meth:`stop` it (bounded join)."""

    def __init__(
        self,
        dsn: str,
        password: str | None,
        urls: list[str],
        queue_password: str,
        queue_name: str,
        metrics: Metrics,
        batch: int = 200,
        idle_s: float = 0.1,
    ) -> None:
        self.dsn, self.password = dsn, password
        self.params = pipeline.connection_parameters(urls, queue_password)
        self.queue_name = queue_name
        self.metrics = metrics
        self.batch = batch
        self.idle_s = idle_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self.thread.join(timeout_s)

    def run(self) -> None:
        """Relay until stopped; a lost database or broker is retried every second."""
        import pika.exceptions

        while not self.stopping.is_set():
            try:
                self._session()
            except (psycopg.Error, pika.exceptions.AMQPError, OSError) as exc:
                self.metrics.relay_errors.inc()
                log.warning("outbox relay: %s: %s; retrying in 1 s", type(exc).__name__, exc)
                self.stopping.wait(1.0)

    def _session(self) -> None:
        import pika

        kwargs: dict[str, Any] = {"password": self.password} if self.password else {}
        with psycopg.connect(self.dsn, autocommit=True, **kwargs) as conn:
            amqp = pika.BlockingConnection(self.params)
            try:
                channel = amqp.channel()
                channel.confirm_delivery()
                counted = 0.0
                while not self.stopping.is_set():
                    if self.relay_batch(conn, channel) == 0:
                        if time.monotonic() - counted > COUNT_EVERY_S:
                            self._count_pending(conn)
                            counted = time.monotonic()
                        self.stopping.wait(self.idle_s)
                    amqp.process_data_events(0)  # heartbeats
            finally:
                if amqp.is_open:
                    amqp.close()

    def relay_batch(self, conn: psycopg.Connection[Any], channel: BlockingChannel) -> int:
        """Publish one batch and mark what the broker confirmed; how many were sent.

        A refused publish (nack, unroutable, queue full) ends the batch: the rows
        confirmed before it are marked sent, the rest wait for the next try."""
        import pika
        import pika.exceptions

        sent: list[int] = []
        failure: Exception | None = None
        with conn.transaction():
            rows = conn.execute(UNSENT_SQL, (self.batch,)).fetchall()
            for order_id, payload in rows:
                placed = datetime.fromisoformat(str(payload.get("created_at")))
                properties = pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    content_type="application/json",
                    message_id=str(order_id),
                    timestamp=int(placed.timestamp()),
                )
                try:
                    channel.basic_publish(
                        "", self.queue_name, pipeline.encode(payload), properties, mandatory=True
                    )
                except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
                    failure = exc
                    break
                sent.append(order_id)
            if sent:
                conn.execute("UPDATE outbox SET sent_at = now() WHERE order_id = ANY(%s)", (sent,))
        self.metrics.relayed.inc(len(sent))
        if failure is not None:
            log.warning("outbox relay: broker refused order %s: %r", rows[len(sent)][0], failure)
            self.metrics.relay_errors.inc()
            time.sleep(0.5)  # the queue is full or electing a leader: do not spin
        return len(sent)

    def _count_pending(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
        self.metrics.outbox_pending.set(row[0] if row else 0)
