"""The order pipeline's wire contract, shared by the storefront's relay and the back office.

An order leaves the shop as one persistent AMQP message on the quorum queue
``QUEUE_NAME`` (DESIGN §4): ``message_id`` is the order id, the body is the order as
JSON (:func:`encode`), and ``timestamp`` is when the order was placed. Poison messages
go to ``<queue>.dead`` with the reason in the ``x-peakready-reason`` header.

``QUEUE_URL`` names the broker: ``amqp[s]://user@host:port/vhost``, or several of them
separated by commas (the lab's three nodes; pika tries them in order). The password
comes from ``QUEUE_PASSWORD``, never from the URL.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from peakready.errors import PeakreadyError

if TYPE_CHECKING:
    import pika
    from pika.adapters.blocking_connection import BlockingChannel

DEAD_LETTER_SUFFIX = ".dead"
DEAD_LETTER_EXCHANGE = "peakready.dead-letter"
REASON_HEADER = "x-peakready-reason"


@dataclass(frozen=True)
class QueueSpec:
    """The quorum queue's name and limits (the topology's ``queue`` tier)."""

    name: str
    max_length: int = 1_000_000
    message_ttl_s: int = 7 * 86400
    dead_letter: bool = True

    @property
    def dead_letter_queue(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX

    def arguments(self) -> dict[str, Any]:
        """``x-`` arguments: Raft-replicated, bounded (publishes past the bound are
        refused, so the outbox keeps them), expired or poison messages dead-lettered."""
        args: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-max-length": self.max_length,
            "x-overflow": "reject-publish",
            "x-message-ttl": self.message_ttl_s * 1000,
        }
        if self.dead_letter:
            args["x-dead-letter-exchange"] = DEAD_LETTER_EXCHANGE
            args["x-dead-letter-routing-key"] = self.dead_letter_queue
        return args


def declare(channel: BlockingChannel, spec: QueueSpec) -> int:
    """Declare the queue (and its dead-letter queue); idempotent. Returns its depth."""
    if spec.dead_letter:
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, "direct", durable=True)
        channel.queue_declare(
            spec.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        channel.queue_bind(spec.dead_letter_queue, DEAD_LETTER_EXCHANGE, spec.dead_letter_queue)
    frame = channel.queue_declare(spec.name, durable=True, arguments=spec.arguments())
    return int(frame.method.message_count)


def parse_urls(value: str, name: str) -> list[str]:
    """``QUEUE_URL`` as a list; a bad entry is a one-line error naming the variable."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname or not parts.username:
            raise PeakreadyError(
                f"{name}: expected amqp[s]://user@host:port/vhost[,…], got {url!r}"
            )
        if parts.password:
            raise PeakreadyError(f"{name}: put the password in QUEUE_PASSWORD, not in the URL")
    if not urls:
        raise PeakreadyError(f"{name}: expected amqp[s]://user@host:port/vhost[,…]")
    return urls


def connection_parameters(
    urls: list[str], password: str, timeout_s: float = 2.0
) -> list[pika.ConnectionParameters]:
    """One ``ConnectionParameters`` per URL, with the password and short timeouts."""
    import pika  # imported here: only the processes that talk to the broker need it

    found = []
    for url in urls:
        parts = urlsplit(url)
        tls = parts.scheme == "amqps"
        found.append(
            pika.ConnectionParameters(
                host=parts.hostname,
                port=parts.port or (5671 if tls else 5672),
                virtual_host=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
                credentials=pika.PlainCredentials(unquote(parts.username or ""), password),
                ssl_options=(
                    pika.SSLOptions(ssl.create_default_context(), parts.hostname) if tls else None
                ),
                socket_timeout=timeout_s,
                blocked_connection_timeout=timeout_s * 5,
                connection_attempts=1,
                heartbeat=10,
            )
        )
    return found


def encode(order: dict[str, Any]) -> bytes:
    return json.dumps(order, separators=(",", ":")).encode()


def decode(body: bytes) -> dict[str, Any]:
    """An order message's body, or ValueError naming what is wrong (a poison message)."""
    try:
        order = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(order, dict):
        raise ValueError("not a JSON object")
    for key in ("order_id", "product_id", "quantity"):
        if not isinstance(order.get(key), int) or isinstance(order.get(key), bool):
            raise ValueError(f"{key}: expected an integer")
    if not isinstance(order.get("idempotency_key"), str):
        raise ValueError("idempotency_key: expected a string")
    return order
