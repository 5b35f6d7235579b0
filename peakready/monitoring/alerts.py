"""One set of alerts, described once and rendered twice: Prometheus alerting rules for
the lab, CloudWatch alarms for AWS (``infra/alarms.py``).

Each :class:`Alert` names its signal in both worlds, its threshold and how long the
condition must hold (``for_s``), its severity, and the scenario faults it must catch.
A drill expects exactly the alerts whose ``catches`` name its scenario
(:func:`expected`), and fails when one stays silent past the stack's ``mttd_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from peakready.topology import QueueDeployment, Topology

Kind = Literal["system", "experience", "business"]
Severity = Literal["page", "ticket"]
Comparison = Literal["GreaterThanThreshold", "LessThanThreshold"]

#: Order attempts (every answer to POST /orders).
_ORDER_POSTS = 'storefront_http_requests_total{{route="/orders",method="POST"}}'
#: Storefront metrics that are not customer traffic.
_NOT_TRAFFIC = 'route!~"/healthz|/readyz|/metrics"'


@dataclass(frozen=True)
class CloudWatchSignal:
    """The alarm's metric on AWS. ``dimensions`` names a dimension set that
    ``infra/alarms.py`` knows (``alb``, ``target_group``, ``db``, ``db_replica``,
    ``cache_member``, ``search``, ``storefront``, ``queue``, ``broker``, ``backoffice``,
    ``canary``); one alarm per member for the ``db_replica`` and ``cache_member`` sets.
    With ``insights`` the alarm watches that CloudWatch Metrics Insights query
    (``{broker}`` in it: the broker's name) instead of one metric."""

    namespace: str
    metric: str
    statistic: str
    dimensions: str
    comparison: Comparison
    #: The metric is published every second (a custom metric with storage resolution
    #: 1), so the alarm can use 10 s periods; AWS's own metrics come every 60 s.
    high_resolution: bool = False
    #: CloudWatch threshold = alert threshold x this (per second → per period, GiB →
    #: bytes, s → ms).
    scale: float = 1.0
    #: ``scale`` is a rate: multiply by the period too.
    per_second: bool = False
    #: No data is itself an alarm (the publishers are the thing that failed).
    missing_is_breaching: bool = False
    #: A Metrics Insights query over every member's metric (an AWS metric per node
    #: whose names the stack does not know ahead), ``{broker}`` in it.
    insights: str = ""
    #: The alarm's own threshold when its signal counts the other way round (members
    #: reporting, where the lab's rule counts members lost).
    threshold: float | None = None


@dataclass(frozen=True)
class Alert:
    name: str
    kind: Kind
    severity: Severity
    summary: str
    #: PromQL with ``{threshold}`` (and ``{fraction}``) in it, for the lab.
    promql: str
    threshold: float
    for_s: float
    cloudwatch: CloudWatchSignal
    #: Scenarios whose fault this alert must detect.
    catches: tuple[str, ...] = ()

    def expression(self) -> str:
        return self.promql.format(threshold=_number(self.threshold))

    def period_s(self) -> int:
        return 10 if self.cloudwatch.high_resolution else 60

    def evaluation_periods(self) -> int:
        return max(1, math.ceil(self.for_s / self.period_s()))

    def cloudwatch_threshold(self) -> float:
        signal = self.cloudwatch
        if signal.threshold is not None:
            return signal.threshold
        value = self.threshold * signal.scale
        return value * self.period_s() if signal.per_second else value


def catalogue(topology: Topology) -> list[Alert]:
    """Every alert of ``topology``'s stack, thresholds from its settings."""
    al, slo = topology.alarms, topology.slo
    alb = "AWS/ApplicationELB"
    shop = "peakready/Storefront"
    above: Comparison = "GreaterThanThreshold"
    below: Comparison = "LessThanThreshold"
    return [
        # ------------------------------------------------------------ system
        Alert(
            "LoadBalancer5xx",
            "system",
            "page",
            "the load balancer answers 5xx of its own (no healthy instance, queue timeouts)",
            'sum(rate(haproxy_frontend_http_responses_total{{proxy="storefront_http",'
            'code="5xx"}}[10s])) - sum(rate(haproxy_backend_http_responses_total{{'
            'proxy="storefront",code="5xx"}}[10s])) > {threshold}',
            al.lb_5xx_per_s,
            10,
            CloudWatchSignal(alb, "HTTPCode_ELB_5XX_Count", "Sum", "alb", above, per_second=True),
        ),
        Alert(
            "Target5xx",
            "system",
            "page",
            "storefront instances answer 5xx (other than the shedding budget's 503s)",
            # Shed answers are the overload protection at work (HAProxy retries a shed
            # read on another instance); AWS's ALB metric cannot tell them apart.
            f'(sum(rate(storefront_http_requests_total{{{{status=~"5..",{_NOT_TRAFFIC}}}}}[10s]))'
            " - (sum(rate(storefront_shed_total[10s])) or vector(0))) > {threshold}",
            al.lb_5xx_per_s,
            10,
            CloudWatchSignal(
                alb, "HTTPCode_Target_5XX_Count", "Sum", "alb", above, per_second=True
            ),
        ),
        Alert(
            "UnhealthyHosts",
            "system",
            "page",
            "an app instance in service fails its health check",
            # The lab's supervisor (its ASG) replaces a dead instance before HAProxy marks
            # it DOWN, so its own count of lost instances says it first; or a server HAProxy
            # marked DOWN in the last 4 s after it was UP (one still starting is not in
            # service: an ALB target in its `initial` state is not unhealthy either).
            "sum(increase(peakready_app_group_instances_lost_total[10s])) > {threshold} or "
            'count(max_over_time(haproxy_server_status{{proxy="storefront",state="DOWN"}}'
            "[4s]) == 1 and on(server) max_over_time(haproxy_server_status{{"
            'proxy="storefront",state="UP"}}[1m] offset 4s) == 1) > {threshold}',
            0,
            0,
            CloudWatchSignal(alb, "UnHealthyHostCount", "Maximum", "target_group", above),
            ("app-instance-loss", "az-power-loss", "az-loss-at-peak"),
        ),
        Alert(
            "DatabaseNoWriter",
            "system",
            "page",
            "no database member accepts writes",
            'max(storefront_dependency_degraded{{dependency="database"}}) > {threshold}',
            0,
            0,
            CloudWatchSignal(shop, "DatabaseDegraded", "Maximum", "storefront", above, True),
            ("db-primary-loss",),
        ),
        Alert(
            "DatabaseReplicaLag",
            "system",
            "ticket",
            "a read replica lags behind the primary",
            "max(pg_replication_lag) > {threshold}",
            al.replica_lag_s,
            60,
            CloudWatchSignal("AWS/RDS", "ReplicaLag", "Maximum", "db_replica", above),
        ),
        Alert(
            "DatabaseCpu",
            "system",
            "ticket",
            "the database's host is busy",
            '100 * (1 - avg(rate(node_cpu_seconds_total{{mode="idle"}}[1m]))) > {threshold}',
            al.cpu_percent,
            300,
            CloudWatchSignal("AWS/RDS", "CPUUtilization", "Average", "db", above),
        ),
        Alert(
            "DatabaseFreeStorage",
            "system",
            "ticket",
            "the database's storage is nearly full",
            'min(node_filesystem_avail_bytes{{mountpoint="/"}}) / 1024^3 < {threshold}',
            al.free_storage_gb,
            120,
            CloudWatchSignal("AWS/RDS", "FreeStorageSpace", "Minimum", "db", below, scale=1024**3),
        ),
        Alert(
            "CacheUnavailable",
            "system",
            "page",
            "the storefront's cache calls fail",
            'max(storefront_dependency_degraded{{dependency="cache"}}) > {threshold}',
            0,
            0,
            CloudWatchSignal(shop, "CacheDegraded", "Maximum", "storefront", above, True),
            ("cache-primary-loss",),
        ),
        Alert(
            "CacheReplicationLag",
            "system",
            "ticket",
            "a cache replica lags behind its primary",
            "max(redis_connected_slave_lag_seconds) > {threshold}",
            al.cache_lag_s,
            60,
            CloudWatchSignal("AWS/ElastiCache", "ReplicationLag", "Maximum", "cache_member", above),
        ),
        Alert(
            "CacheEvictions",
            "system",
            "ticket",
            "the cache evicts keys: it is too small for the hot set",
            "sum(rate(redis_evicted_keys_total[1m])) > {threshold}",
            0,
            60,
            CloudWatchSignal(
                "AWS/ElastiCache", "Evictions", "Sum", "cache_member", above, per_second=True
            ),
        ),
        Alert(
            "SearchUnavailable",
            "system",
            "page",
            "search answers from no node (cluster red)",
            'max(storefront_dependency_degraded{{dependency="search"}}) > {threshold}',
            0,
            60,
            CloudWatchSignal("AWS/ES", "ClusterStatus.red", "Maximum", "search", above),
        ),
        Alert(
            "SearchNodeLost",
            "system",
            "ticket",
            "a search node does not answer: its copy of the index is missing (cluster yellow)",
            'count(probe_success{{job="search"}} == 0) > {threshold}',
            0,
            0,
            CloudWatchSignal("AWS/ES", "ClusterStatus.yellow", "Maximum", "search", above),
            ("search-node-loss",),
        ),
        # ------------------------------------------------------- business
        Alert(
            "OrderErrors",
            "business",
            "page",
            "orders fail: share of POST /orders answered 5xx",
            'sum(rate(storefront_http_requests_total{{route="/orders",method="POST",'
            'status=~"5.."}}[10s])) / sum(rate(storefront_http_requests_total{{'
            'route="/orders",method="POST"}}[10s])) > {threshold}',
            al.order_error_ratio,
            0,
            CloudWatchSignal(shop, "OrderErrorRatio", "Maximum", "storefront", above, True),
            ("db-primary-loss",),
        ),
        Alert(
            "OrderRateDrop",
            "business",
            "page",
            "orders per minute fell below a fraction of the last minute's while customers "
            "keep trying to order",
            # Against order attempts, not all traffic: a drill (or a campaign) changes the
            # mix of browsing and buying; a checkout nobody reaches is the probe's to find.
            "sum(rate(storefront_orders_created_total[20s])) < {threshold} * "
            "sum(rate(storefront_orders_created_total[1m] offset 20s)) and "
            f"sum(rate({_ORDER_POSTS}[20s])) > {{threshold}} * "
            f"sum(rate({_ORDER_POSTS}[1m] offset 20s))",
            al.order_rate_drop_fraction,
            10,
            CloudWatchSignal(shop, "OrdersPerMinuteRatio", "Minimum", "storefront", below, True),
        ),
        Alert(
            "OrderLatency",
            "experience",
            "page",
            "order p99 above the stack's objective",
            "histogram_quantile(0.99, sum by (le) (rate("
            'storefront_http_request_duration_seconds_bucket{{route="/orders",method="POST"}}'
            "[30s]))) * 1000 > {threshold}",
            slo.order_p99_ms,
            30,
            CloudWatchSignal(shop, "OrderLatency", "p99", "storefront", above, True),
        ),
        Alert(
            "CheckoutProbe",
            "experience",
            "page",
            "the synthetic checkout (a flagged order placed, then read back) fails",
            # Percent of the last round, as CloudWatch Synthetics' SuccessPercent; a probe
            # that stopped reporting is an alarm too (CloudWatch: missing data breaches).
            "min(peakready_checkout_probe_success) * 100 < {threshold}"
            ' or absent(up{{job="checkout-probe"}} == 1)',
            100,
            4,
            CloudWatchSignal(
                "CloudWatchSynthetics",
                "SuccessPercent",
                "Average",
                "canary",
                below,
                missing_is_breaching=True,
            ),
            ("db-primary-loss",),
        ),
        *_queue_alerts(topology),
    ]


def _queue_alerts(topology: Topology) -> list[Alert]:
    """The order pipeline's alerts, when the stack has one: depth and age of the backlog,
    and a broker node lost."""
    queue = topology.queue
    if queue is None:
        return []
    brokers = 3 if queue.deployment == QueueDeployment.CLUSTER_MULTI_AZ else 1
    # Deeper than the smallest worker group clears within the age objective.
    depth = queue.consumer_min_size * queue.consumer_orders_per_s * queue.max_backlog_age_s
    return [
        Alert(
            "QueueBacklog",
            "system",
            "ticket",
            "more orders wait for the back office than its smallest group clears within "
            "the backlog-age objective",
            "max(backoffice_queue_messages) > {threshold}",
            max(1.0, depth),
            60,
            CloudWatchSignal(
                "AWS/AmazonMQ", "MessageCount", "Maximum", "queue", "GreaterThanThreshold"
            ),
        ),
        Alert(
            "QueueAge",
            "business",
            "page",
            "the oldest order waiting for the back office is older than its objective, or "
            "no worker is draining the queue (so the age only grows)",
            # The workers report the age; with none consuming, nothing does: that is the
            # alarm too (CloudWatch: missing data breaches).
            "max(backoffice_backlog_age_seconds) > {threshold}"
            " or absent(backoffice_consumer_up == 1)",
            queue.max_backlog_age_s,
            4,
            CloudWatchSignal(
                "peakready/Backoffice",
                "BacklogAgeSeconds",
                "Maximum",
                "backoffice",
                "GreaterThanThreshold",
                True,
                missing_is_breaching=True,
            ),
            ("backoffice-outage",),
        ),
        Alert(
            "QueueNodeLost",
            "system",
            "ticket",
            "a broker node does not answer: the quorum queue runs on fewer replicas (one "
            "more loss and it stops taking orders)",
            # The lab's blackbox exporter connects to each node's AMQP port. Amazon MQ
            # publishes per-node metrics under names the stack cannot know ahead: the
            # alarm counts the nodes still reporting one.
            'count(probe_success{{job="queue"}} == 0) > {threshold}',
            0,
            0,
            CloudWatchSignal(
                "AWS/AmazonMQ",
                "SystemCpuUtilization",
                "SampleCount",
                "broker",
                "LessThanThreshold",
                missing_is_breaching=True,
                insights='SELECT COUNT(SystemCpuUtilization) FROM SCHEMA("AWS/AmazonMQ", '
                "Broker, Node) WHERE Broker = '{broker}'",
                threshold=brokers,
            ),
            ("broker-node-loss",),
        ),
    ]


def expected(topology: Topology, scenario: str) -> list[str]:
    """Names of the alerts ``scenario``'s fault must raise."""
    return [a.name for a in catalogue(topology) if scenario in a.catches]


def prometheus_rules(topology: Topology) -> dict[str, Any]:
    """The catalogue as a Prometheus rule file (``groups:``), for the lab."""
    return {
        "groups": [
            {
                "name": f"peakready-{topology.stack}",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expression(),
                        "for": f"{_number(a.for_s)}s",
                        "labels": {"severity": a.severity, "kind": a.kind},
                        "annotations": {"summary": a.summary},
                    }
                    for a in catalogue(topology)
                ],
            }
        ]
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
