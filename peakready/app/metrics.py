"""Prometheus metrics of one storefront instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, az: str, instance: str) -> None:
        self.registry = CollectorRegistry()
        info = Gauge(
            "storefront_instance_info",
            "Where this instance runs",
            ["az", "instance"],
            registry=self.registry,
        )
        info.labels(az=az, instance=instance).set(1)
        self.requests = Counter(
            "storefront_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "storefront_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.orders_created = Counter(
            "storefront_orders_created_total",
            "Orders created (not replays)",
            registry=self.registry,
        )
        self.synthetic_orders = Counter(
            "storefront_synthetic_orders_total",
            "Orders of the synthetic checkout probes (not in the business figures)",
            registry=self.registry,
        )
        self.order_replays = Counter(
            "storefront_order_replays_total",
            "Requests answered with an existing order",
            registry=self.registry,
        )
        self.db_pool = Gauge(
            "storefront_db_pool_connections",
            "Database pool connections by pool (write, read) and state (in_use, idle)",
            ["pool", "state"],
            registry=self.registry,
        )
        self.degraded = Gauge(
            "storefront_dependency_degraded",
            "1 from a failed call to the dependency until the next successful one",
            ["dependency"],
            registry=self.registry,
        )
        self.shed = Counter(
            "storefront_shed_total",
            "Requests answered 503 by the shedding budget, by feature (search, reads)",
            ["feature"],
            registry=self.registry,
        )
        self.relayed = Counter(
            "storefront_outbox_relayed_total",
            "Outbox rows this instance's relay published and the broker confirmed",
            registry=self.registry,
        )
        self.relay_errors = Counter(
            "storefront_outbox_relay_errors_total",
            "Relay failures: broker or database lost, publish refused",
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "storefront_outbox_pending",
            "Outbox rows not sent yet, as this instance's relay last counted them",
            registry=self.registry,
        )
