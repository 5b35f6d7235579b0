"""The storefront's custom metrics for the AWS alarms (Stubber: no AWS call is made)."""

from __future__ import annotations

import asyncio

import boto3
from botocore.stub import ANY, Stubber

from peakready.app.cloudwatch import NAMESPACE, Publisher
from peakready.app.metrics import Metrics


def _orders(metrics: Metrics, ok: int, failed: int, seconds: float = 0.02) -> None:
    for status, n in (("201", ok), ("503", failed)):
        for _ in range(n):
            metrics.requests.labels("/orders", "POST", status).inc()
            metrics.latency.labels("/orders", "POST", status).observe(seconds)
    for _ in range(ok):
        metrics.orders_created.inc()


def _by_name(data: list[dict]) -> dict[str, dict]:
    return {d["MetricName"]: d for d in data}


def test_each_interval_publishes_what_was_counted_since_the_last() -> None:
    metrics = Metrics("eu-central-1a", "i-1")
    publisher = Publisher(metrics, "prod", client=None)
    _orders(metrics, 5, 0)
    publisher.sample()  # baseline
    _orders(metrics, 90, 10, seconds=0.2)
    data = _by_name(publisher.sample())
    assert data["OrderErrorRatio"]["Value"] == 0.1
    assert data["OrderErrorRatio"]["Dimensions"] == [{"Name": "Stack", "Value": "prod"}]
    assert data["OrderErrorRatio"]["StorageResolution"] == 1
    latency = data["OrderLatency"]
    assert latency["Values"] == [250.0] and latency["Counts"] == [100.0]  # the 0.25 s bucket
    assert data["DatabaseDegraded"]["Value"] == 0.0


def test_orders_per_attempt_falling_against_the_last_minute_is_the_rate_drop() -> None:
    metrics = Metrics("eu-central-1a", "i-1")
    publisher = Publisher(metrics, "prod", client=None)
    publisher.sample()
    _orders(metrics, 100, 0)
    publisher.sample()
    _orders(metrics, 20, 80)  # customers keep trying, orders fail
    assert _by_name(publisher.sample())["OrdersPerMinuteRatio"]["Value"] == 0.2
    _orders(metrics, 10, 0)  # fewer try, all succeed: not a drop
    assert _by_name(publisher.sample())["OrdersPerMinuteRatio"]["Value"] > 1


def test_run_puts_the_data_in_the_storefronts_namespace() -> None:
    client = boto3.client(
        "cloudwatch", region_name="eu-central-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response("put_metric_data", {}, {"Namespace": NAMESPACE, "MetricData": ANY})
    metrics = Metrics("eu-central-1a", "i-1")
    publisher = Publisher(metrics, "prod", client, interval_s=0.2)

    async def one_interval() -> None:
        task = asyncio.create_task(publisher.run())
        await asyncio.sleep(0.3)
        task.cancel()

    # A loop of its own, never made current: other tests (Pulumi's mocks) use theirs.
    loop = asyncio.new_event_loop()
    try:
        with stubber:
            loop.run_until_complete(one_interval())
    finally:
        loop.close()
    stubber.assert_no_pending_responses()
