"""Alarms: the stack's alert catalogue (``peakready.monitoring.alerts``) as CloudWatch
alarms, to one SNS topic.

Each alert becomes one alarm named ``peakready-<stack>-<alert>`` (one per member, the
member's name after it, for replica and cache-member signals), so that a drill maps
alarm history back to the catalogue. Periods are 10 s for the storefront's
high-resolution custom metrics (namespace ``peakready/Storefront``) and 60 s for AWS's
own; the evaluation periods cover the alert's ``for_s``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws.cloudwatch as cloudwatch
import pulumi_aws.sns as sns

from peakready.monitoring.alerts import Alert


@dataclass
class AlarmsArgs:
    stack: str
    alerts: list[Alert]
    alb_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    db_primary: pulumi.Input[str]
    db_replicas: list[pulumi.Output[str]]
    db_is_cluster: bool
    cache_members: list[str]
    search_domain: pulumi.Input[str]
    account_id: pulumi.Input[str]
    region: str = "eu-central-1"  # the dashboard's widgets read it
    email: str | None = None
    #: The order pipeline, when the stack has one: broker name and queue.
    queue_broker: pulumi.Input[str] | None = None
    queue_name: str | None = None
    #: The synthetic checkout's canary (``CheckoutProbe``).
    canary_name: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Alarms(pulumi.ComponentResource):
    """One CloudWatch alarm per catalogue alert (and member), alarm and OK to the topic."""

    topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:alarms:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic = sns.Topic(
            f"{name}-topic", kms_master_key_id="alias/aws/sns", tags=args.tags, opts=child
        )
        if args.email:
            sns.TopicSubscription(
                f"{name}-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=child,
            )
        for alert in args.alerts:
            for suffix, dimensions, scale in _dimension_sets(alert, args):
                alarm_name = f"peakready-{args.stack}-{alert.name}{suffix}"
                insights = alert.cloudwatch.insights
                metric = {} if insights else _metric(alert, dimensions)
                cloudwatch.MetricAlarm(
                    f"{name}-{alert.name}{suffix}",
                    name=alarm_name,
                    **metric,
                    metric_queries=[_insights_query(alert, dimensions)] if insights else None,
                    evaluation_periods=alert.evaluation_periods(),
                    datapoints_to_alarm=alert.evaluation_periods(),
                    comparison_operator=alert.cloudwatch.comparison,
                    threshold=alert.cloudwatch_threshold() * scale,
                    treat_missing_data=(
                        "breaching" if alert.cloudwatch.missing_is_breaching else "notBreaching"
                    ),
                    alarm_description=f"{alert.summary} ({alert.severity})",
                    alarm_actions=[topic.arn],
                    ok_actions=[topic.arn],
                    tags={**args.tags, "peakready:alert": alert.name},
                    opts=child,
                )

        cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"peakready-{args.stack}",
            dashboard_body=pulumi.Output.all(
                args.alb_arn_suffix, args.db_primary, args.queue_broker
            ).apply(lambda v: json.dumps(_dashboard(args.stack, v[0], v[1], args, v[2]))),
            opts=child,
        )

        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})


def _metric(alert: Alert, dimensions: Mapping[str, pulumi.Input[str]]) -> dict[str, Any]:
    """The alarm's one metric: namespace, name, dimensions, statistic and period."""
    statistic = alert.cloudwatch.statistic
    percentile = statistic.startswith("p")
    return {
        "namespace": alert.cloudwatch.namespace,
        "metric_name": alert.cloudwatch.metric,
        "dimensions": dimensions,
        "statistic": None if percentile else statistic,
        "extended_statistic": statistic if percentile else None,
        "period": alert.period_s(),
    }


def _insights_query(
    alert: Alert, dimensions: Mapping[str, pulumi.Input[str]]
) -> cloudwatch.MetricAlarmMetricQueryArgs:
    """The alarm's Metrics Insights query, the broker's name in it."""
    query = pulumi.Output.from_input(dimensions["Broker"]).apply(
        lambda broker: alert.cloudwatch.insights.format(broker=broker)
    )
    return cloudwatch.MetricAlarmMetricQueryArgs(
        id="q", expression=query, period=alert.period_s(), return_data=True
    )


def _dashboard(
    stack: str, alb: str, db_primary: str, args: AlarmsArgs, broker: str | None = None
) -> dict[str, object]:
    """The peak signals on one screen: requests and 5xx, order latency, orders per
    minute, order errors, replica lag, the cache, and the queue's depth and age."""
    shop = "peakready/Storefront"
    lb = "AWS/ApplicationELB"
    db_key = "DBClusterIdentifier" if args.db_is_cluster else "DBInstanceIdentifier"

    def widget(title: str, metrics: list[list[object]], stat: str = "Sum") -> dict[str, object]:
        return {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "metrics": metrics,
                "stat": stat,
                "period": 60,
                "region": args.region,
            },
        }

    return {
        "widgets": [
            widget(
                "requests and 5xx",
                [
                    [lb, "RequestCount", "LoadBalancer", alb],
                    [lb, "HTTPCode_ELB_5XX_Count", "LoadBalancer", alb],
                    [lb, "HTTPCode_Target_5XX_Count", "LoadBalancer", alb],
                ],
            ),
            widget("order latency p99 (ms)", [[shop, "OrderLatency", "Stack", stack]], "p99"),
            widget("orders per minute", [[shop, "OrdersCreated", "Stack", stack]]),
            widget("order errors (share)", [[shop, "OrderErrorRatio", "Stack", stack]], "Maximum"),
            widget(
                "database: replica lag (s), CPU",
                [
                    ["AWS/RDS", "ReplicaLag", db_key, db_primary],
                    ["AWS/RDS", "CPUUtilization", db_key, db_primary],
                ],
                "Maximum",
            ),
            widget(
                "cache: evictions",
                [["AWS/ElastiCache", "Evictions", "CacheClusterId", m] for m in args.cache_members],
            ),
            *(
                [
                    widget(
                        "queue: orders waiting, oldest (s)",
                        [
                            [
                                "AWS/AmazonMQ",
                                "MessageCount",
                                "Broker",
                                broker,
                                "VirtualHost",
                                "/",
                                "Queue",
                                args.queue_name,
                            ],
                            ["peakready/Backoffice", "BacklogAgeSeconds", "Stack", stack],
                        ],
                        "Maximum",
                    )
                ]
                if broker and args.queue_name
                else []
            ),
        ]
    }


def _dimension_sets(
    alert: Alert, args: AlarmsArgs
) -> list[tuple[str, Mapping[str, pulumi.Input[str]], float]]:
    """``(name suffix, dimensions, threshold factor)`` of each alarm ``alert`` renders."""
    alb = {"LoadBalancer": args.alb_arn_suffix}
    db_key = "DBClusterIdentifier" if args.db_is_cluster else "DBInstanceIdentifier"
    kind = alert.cloudwatch.dimensions
    if kind == "alb":
        return [("", alb, 1.0)]
    if kind == "target_group":
        return [("", {**alb, "TargetGroup": args.target_group_arn_suffix}, 1.0)]
    if kind == "db":
        return [("", {db_key: args.db_primary}, 1.0)]
    if kind == "db_replica":
        sets: list[tuple[str, Mapping[str, pulumi.Input[str]], float]] = [
            (f"-replica-{i + 1}", {"DBInstanceIdentifier": r}, 1.0)
            for i, r in enumerate(args.db_replicas)
        ]
        if args.db_is_cluster:  # the cluster's own ReplicaLag is in milliseconds
            sets.append(("", {db_key: args.db_primary}, 1000.0))
        return sets
    if kind == "cache_member":
        return [(f"-{m}", {"CacheClusterId": m}, 1.0) for m in args.cache_members]
    if kind == "search":
        return [("", {"DomainName": args.search_domain, "ClientId": args.account_id}, 1.0)]
    if kind in ("storefront", "backoffice"):
        return [("", {"Stack": args.stack}, 1.0)]
    if kind == "canary" and args.canary_name is not None:
        return [("", {"CanaryName": args.canary_name}, 1.0)]
    if kind == "broker" and args.queue_broker is not None:
        return [("", {"Broker": args.queue_broker}, 1.0)]
    if kind == "queue" and args.queue_broker is not None and args.queue_name:
        queue = {"Broker": args.queue_broker, "VirtualHost": "/", "Queue": args.queue_name}
        return [("", queue, 1.0)]
    raise ValueError(f"alert {alert.name}: unknown dimension set {kind!r}")
