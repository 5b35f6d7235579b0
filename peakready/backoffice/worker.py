"""The consumer: each order applied once in the back office's database, then acknowledged.

A delivery is applied in one transaction keyed by the order id (:class:`Applier`): the
first delivery records the order and creates its shipment; a redelivery (the relay
sent it twice, or the broker redelivered after a lost ack) only counts a delivery. The
ack goes out after the commit, so a worker that dies in between loses nothing: the
broker redelivers and the apply is a no-op. A message that is not an order (poison)
goes to the dead-letter queue with its reason, and is recorded with it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge

from peakready import pipeline

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel
    from pika.spec import Basic, BasicProperties

    from peakready.backoffice.settings import BackofficeSettings

log = logging.getLogger("peakready.backoffice")

SCHEMA_LOCK_KEY = 0x5EA1_0002
SCHEMA = """
CREATE TABLE IF NOT EXISTS applied_orders (
    order_id bigint PRIMARY KEY,
    idempotency_key text NOT NULL,
    product_id integer NOT NULL,
    quantity integer NOT NULL,
    ordered_at timestamptz,
    applied_at timestamptz NOT NULL DEFAULT now(),
    deliveries integer NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS shipments (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS shipments_order_id ON shipments (order_id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id bigserial PRIMARY KEY,
    message_id text,
    reason text NOT NULL,
    body text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
"""
REFRESH_S = 1.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.applied = Counter(
            "backoffice_orders_applied_total", "Orders applied (first delivery)", registry=r
        )
        self.deliveries = Counter(
            "backoffice_deliveries_total", "Order deliveries received", registry=r
        )
        self.redeliveries = Counter(
            "backoffice_redeliveries_total",
            "Deliveries of an order already applied (absorbed, not applied again)",
            registry=r,
        )
        self.dead_lettered = Counter(
            "backoffice_dead_lettered_total", "Messages sent to the dead-letter queue", registry=r
        )
        self.backlog = Gauge(
            "backoffice_queue_messages", "Orders waiting in the queue (ready)", registry=r
        )
        self.age = Gauge(
            "backoffice_backlog_age_seconds",
            "Age of the order this worker took last while a backlog waits (0: none)",
            registry=r,
        )
        self.up = Gauge("backoffice_consumer_up", "1 while consuming from the broker", registry=r)


class Applier:
    """The back office's effect of one order, idempotent by order id."""

    def apply(self, conn: psycopg.Connection[Any], order: dict[str, Any]) -> bool:
        """Apply ``order`` inside the caller's transaction; True on its first delivery."""
        row = conn.execute(
            "INSERT INTO applied_orders AS a (order_id, idempotency_key, product_id, quantity,"
            " ordered_at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (order_id) DO UPDATE SET deliveries = a.deliveries + 1"
            " RETURNING (xmax = 0) AS first",
            (
                order["order_id"],
                order["idempotency_key"],
                order["product_id"],
                order["quantity"],
                order.get("created_at"),
            ),
        ).fetchone()
        first = bool(row and row[0])
        if first:
            self.ship(conn, order)
        return first

    def ship(self, conn: psycopg.Connection[Any], order: dict[str, Any]) -> None:
        conn.execute("INSERT INTO shipments (order_id) VALUES (%s)", (order["order_id"],))


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """The back office's tables (idempotent; one worker at a time)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
    try:
        conn.execute(SCHEMA)  # type: ignore[arg-type]  # a constant
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))


def connect(dsn: str, settings: BackofficeSettings) -> psycopg.Connection[Any]:
    password = settings.db_password.get_secret_value() if settings.db_password else None
    kwargs: dict[str, Any] = {"password": password} if password else {}
    return psycopg.connect(dsn, autocommit=True, **kwargs)


class Worker:
    """Consume until stopped; a lost broker or database is retried every second."""

    def __init__(
        self, settings: BackofficeSettings, metrics: Metrics, applier: Applier | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.applier = applier or Applier()
        self.spec = settings.queue()
        password = settings.queue_password.get_secret_value() if settings.queue_password else ""
        urls = pipeline.parse_urls(settings.queue_url, "QUEUE_URL")
        self.params = pipeline.connection_parameters(urls, password)
        self.ready = False
        self.last_order_at: float | None = None  # epoch seconds the last applied order was placed

    def run(self, stopping: threading.Event) -> None:
        import pika.exceptions

        while not stopping.is_set():
            try:
                self._session(stopping)
            except (psycopg.Error, pika.exceptions.AMQPError, OSError) as exc:
                log.warning("consumer: %s: %s; retrying in 1 s", type(exc).__name__, exc)
                stopping.wait(1.0)
            finally:
                self.ready = False
                self.metrics.up.set(0)

    def _session(self, stopping: threading.Event) -> None:
        import pika

        with connect(self.settings.db_dsn, self.settings) as db:
            ensure_schema(db)
            amqp = pika.BlockingConnection(self.params)
            try:
                channel = amqp.channel()
                channel.confirm_delivery()  # dead letters are published, and confirmed
                pipeline.declare(channel, self.spec)
                channel.basic_qos(prefetch_count=self.settings.prefetch)
                self.ready = True
                self.metrics.up.set(1)
                refreshed = 0.0
                for method, properties, body in channel.consume(
                    self.spec.name, inactivity_timeout=0.5
                ):
                    if stopping.is_set():
                        break
                    if method is not None:
                        self.handle(db, channel, method, properties, body)
                    if time.monotonic() - refreshed >= REFRESH_S:
                        self._refresh(channel)
                        refreshed = time.monotonic()
                channel.cancel()
            finally:
                if amqp.is_open:
                    amqp.close()

    def handle(
        self,
        db: psycopg.Connection[Any],
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        self.metrics.deliveries.inc()
        try:
            order = pipeline.decode(body)
            if properties.message_id and properties.message_id != str(order["order_id"]):
                raise ValueError(f"message_id {properties.message_id} is not the order's id")
        except ValueError as exc:
            self.dead_letter(db, channel, properties, body, str(exc))
            channel.basic_ack(method.delivery_tag)
            return
        with db.transaction():
            first = self.applier.apply(db, order)
        channel.basic_ack(method.delivery_tag)  # after the commit: a crash redelivers
        (self.metrics.applied if first else self.metrics.redeliveries).inc()
        if isinstance(order.get("created_at"), str):
            self.last_order_at = datetime.fromisoformat(order["created_at"]).timestamp()

    def dead_letter(
        self,
        db: psycopg.Connection[Any],
        channel: BlockingChannel,
        properties: BasicProperties,
        body: bytes,
        reason: str,
    ) -> None:
        import pika

        log.warning("dead letter %s: %s", properties.message_id, reason)
        db.execute(
            "INSERT INTO dead_letters (message_id, reason, body) VALUES (%s, %s, %s)",
            (properties.message_id, reason, body.decode(errors="replace")[:2000]),
        )
        if self.spec.dead_letter:
            headers = {**(properties.headers or {}), pipeline.REASON_HEADER: reason}
            channel.basic_publish(
                pipeline.DEAD_LETTER_EXCHANGE,
                self.spec.dead_letter_queue,
                body,
                pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=properties.message_id,
                    headers=headers,
                ),
                mandatory=True,
            )
        self.metrics.dead_lettered.inc()

    def _refresh(self, channel: BlockingChannel) -> None:
        depth = int(channel.queue_declare(self.spec.name, passive=True).method.message_count)
        self.metrics.backlog.set(depth)
        waiting = depth > 0 and self.last_order_at is not None
        self.metrics.age.set(max(time.time() - (self.last_order_at or 0), 0) if waiting else 0)


class CloudWatchPublisher:
    """The figures the AWS alarms read, every ``interval_s`` at 1 s resolution: the
    backlog's age (``QueueAge``; no data breaches it) and the orders applied."""

    NAMESPACE = "peakready/Backoffice"

    def __init__(self, metrics: Metrics, stack: str, client: Any, interval_s: float = 10.0):
        self.metrics = metrics
        self.client = client
        self.interval_s = interval_s
        self.dimensions = [{"Name": "Stack", "Value": stack}]
        self.applied = self._applied()

    def sample(self) -> list[dict[str, Any]]:
        applied = self._applied()
        delta, self.applied = applied - self.applied, applied
        data = [("OrdersApplied", delta, "Count")]
        value = self.metrics.registry.get_sample_value
        if value("backoffice_consumer_up") == 1:  # only a consuming worker knows the age
            age = value("backoffice_backlog_age_seconds") or 0.0
            data.append(("BacklogAgeSeconds", age, "Seconds"))
        return [
            {
                "MetricName": name,
                "Dimensions": self.dimensions,
                "Value": float(value),
                "Unit": unit,
                "StorageResolution": 1,
            }
            for name, value, unit in data
        ]

    def run(self, stopping: threading.Event) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        while not stopping.wait(self.interval_s):
            try:
                self.client.put_metric_data(Namespace=self.NAMESPACE, MetricData=self.sample())
            except (BotoCoreError, ClientError) as exc:
                log.warning("cloudwatch: put_metric_data failed: %s", exc)

    def _applied(self) -> float:
        value = self.metrics.registry.get_sample_value("backoffice_orders_applied_total")
        return float(value or 0.0)
