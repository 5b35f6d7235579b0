"""The order pipeline's wire contract: URLs, queue arguments, messages."""

from __future__ import annotations

import pytest

from peakready import pipeline
from peakready.errors import PeakreadyError


def test_a_lab_url_names_each_node_and_keeps_the_password_out() -> None:
    urls = pipeline.parse_urls(
        "amqp://peakready@127.0.0.1:20004/%2F, amqp://peakready@127.0.0.1:20005/%2F", "QUEUE_URL"
    )
    params = pipeline.connection_parameters(urls, "s3cret")
    assert [(p.host, p.port, p.virtual_host) for p in params] == [
        ("127.0.0.1", 20004, "/"),
        ("127.0.0.1", 20005, "/"),
    ]
    assert {p.credentials.password for p in params} == {"s3cret"}
    assert params[0].ssl_options is None


def test_amqps_uses_tls_on_5671_by_default() -> None:
    (params,) = pipeline.connection_parameters(
        pipeline.parse_urls("amqps://peakready@b-1.mq.example/%2F", "QUEUE_URL"), "pw"
    )
    assert (params.port, params.ssl_options is not None) == (5671, True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", r"QUEUE_URL: expected amqp\[s\]://user@host:port/vhost"),
        ("http://u@h:1/", r"QUEUE_URL: expected .* got 'http://u@h:1/'"),
        ("amqp://h:5672/", r"QUEUE_URL: expected .* got 'amqp://h:5672/'"),
        ("amqp://u:pw@h:5672/", r"put the password in QUEUE_PASSWORD, not in the URL"),
    ],
)
def test_a_bad_queue_url_is_one_line_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(PeakreadyError, match=message):
        pipeline.parse_urls(value, "QUEUE_URL")


def test_the_queue_is_quorum_bounded_and_dead_lettered() -> None:
    spec = pipeline.QueueSpec("orders", max_length=10, message_ttl_s=60)
    assert spec.arguments() == {
        "x-queue-type": "quorum",
        "x-max-length": 10,
        "x-overflow": "reject-publish",
        "x-message-ttl": 60_000,
        "x-dead-letter-exchange": pipeline.DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": "orders.dead",
    }
    assert "x-dead-letter-exchange" not in pipeline.QueueSpec("o", dead_letter=False).arguments()


def test_an_order_survives_the_wire() -> None:
    order = {"order_id": 1, "idempotency_key": "k", "product_id": 2, "quantity": 3}
    assert pipeline.decode(pipeline.encode(order)) == order


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"order_id": "1", "product_id": 1, "quantity": 1}', "order_id: expected an integer"),
        (b'{"order_id": 1, "product_id": true, "quantity": 1}', "product_id: expected an integer"),
        (b'{"order_id": 1, "product_id": 1, "quantity": 1}', "idempotency_key: expected a string"),
    ],
)
def test_a_poison_message_names_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        pipeline.decode(body)
