"""The storefront's business and dependency figures as CloudWatch custom metrics.

On AWS the stack's alarms for orders (``peakready.monitoring.alerts``: order errors,
orders per minute, order p99) and for the dependencies the app sees read namespace
``peakready/Storefront``, dimension ``Stack``. Every ``interval_s`` each instance
publishes what its Prometheus registry counted since the last time, at storage
resolution 1 s, so that the alarms can use 10 s periods. Order latency goes as a
distribution (values and counts from the histogram's buckets): CloudWatch computes the
p99 over every instance's datapoints.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from peakready.app.metrics import Metrics

NAMESPACE = "peakready/Storefront"
log = logging.getLogger("peakready.app.cloudwatch")


class Publisher:
    def __init__(self, metrics: Metrics, stack: str, client: Any, interval_s: float = 10.0):
        self.metrics = metrics
        self.client = client
        self.interval_s = interval_s
        self.dimensions = [{"Name": "Stack", "Value": stack}]
        self.last: dict[str, float] = {}
        self.last_buckets: dict[float, float] = {}
        #: (orders created, order attempts) per interval over the last minute.
        self.history: deque[tuple[float, float]] = deque(maxlen=max(1, int(60 / interval_s)))

    def sample(self) -> list[dict[str, Any]]:
        """The MetricData of one interval (and the counters remembered for the next)."""
        attempts, errors, buckets = self._orders()
        created = self._value("storefront_orders_created_total")
        d_created = created - self.last.get("created", created)
        d_attempts = attempts - self.last.get("attempts", attempts)
        d_errors = errors - self.last.get("errors", errors)
        self.last = {"created": created, "attempts": attempts, "errors": errors}
        data = [
            self._datum("OrdersCreated", d_created, "Count"),
            self._datum("DatabaseDegraded", self._degraded("database")),
            self._datum("CacheDegraded", self._degraded("cache")),
        ]
        if d_attempts > 0:
            data.append(self._datum("OrderErrorRatio", d_errors / d_attempts))
        if self.history:
            # Orders per attempt against the last minute's: a campaign that changes how
            # many try to buy moves both; a checkout that fails moves only the orders.
            before_created = sum(c for c, _ in self.history)
            before_attempts = sum(a for _, a in self.history)
            if before_created > 0 and d_attempts > 0:
                now = d_created / d_attempts
                data.append(
                    self._datum("OrdersPerMinuteRatio", now / (before_created / before_attempts))
                )
        self.history.append((d_created, d_attempts))
        values, counts = self._latency(buckets)
        if values:
            data.append(
                {
                    "MetricName": "OrderLatency",
                    "Dimensions": self.dimensions,
                    "Values": values,
                    "Counts": counts,
                    "Unit": "Milliseconds",
                    "StorageResolution": 1,
                }
            )
        return data

    async def run(self) -> None:
        """Publish every ``interval_s`` until cancelled; a failed call is logged, not fatal."""
        self.sample()  # the baseline the first interval is measured from
        while True:
            await asyncio.sleep(self.interval_s)
            data = self.sample()
            try:
                await asyncio.to_thread(
                    self.client.put_metric_data, Namespace=NAMESPACE, MetricData=data
                )
            except (BotoCoreError, ClientError) as exc:
                log.warning("cloudwatch: put_metric_data failed: %s", exc)

    # private

    def _datum(self, name: str, value: float, unit: str = "None") -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": self.dimensions,
            "Value": float(value),
            "Unit": unit,
            "StorageResolution": 1,
        }

    def _value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return float(self.metrics.registry.get_sample_value(name, labels or {}) or 0.0)

    def _degraded(self, dependency: str) -> float:
        return self._value("storefront_dependency_degraded", {"dependency": dependency})

    def _orders(self) -> tuple[float, float, dict[float, float]]:
        """Order attempts, 5xx answers and the latency buckets (cumulative, by ``le``)."""
        attempts = errors = 0.0
        buckets: dict[float, float] = {}
        for family in self.metrics.registry.collect():
            for s in family.samples:
                if s.labels.get("route") != "/orders" or s.labels.get("method") != "POST":
                    continue
                if s.name == "storefront_http_requests_total":
                    attempts += s.value
                    if s.labels.get("status", "").startswith("5"):
                        errors += s.value
                elif s.name == "storefront_http_request_duration_seconds_bucket":
                    le = float(s.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + s.value
        return attempts, errors, buckets

    def _latency(self, buckets: dict[float, float]) -> tuple[list[float], list[float]]:
        """The interval's answers per bucket, each at its upper bound in ms (the last
        finite bound twice over for ``+Inf``)."""
        values, counts = [], []
        below = 0.0
        finite = [b for b in sorted(buckets) if b != float("inf")]
        for le in sorted(buckets):
            cumulative = buckets[le] - self.last_buckets.get(le, 0.0)
            count = cumulative - below
            below = cumulative
            if count > 0:
                bound = le if le != float("inf") else (finite[-1] * 2 if finite else 1.0)
                values.append(round(bound * 1000, 3))
                counts.append(count)
        self.last_buckets = dict(buckets)
        return values, counts
