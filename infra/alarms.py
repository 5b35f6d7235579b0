"""Alarms: the CloudWatch alarms that matter at peak, to one SNS topic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws.cloudwatch as cloudwatch
import pulumi_aws.sns as sns


@dataclass
class AlarmsArgs:
    alb_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    db_primary: pulumi.Input[str]
    db_replicas: list[pulumi.Output[str]]
    db_is_cluster: bool
    cache_members: list[str]
    search_domain: pulumi.Input[str]
    account_id: pulumi.Input[str]
    replica_lag_s: float = 30
    cpu_percent: float = 80
    free_storage_gb: float = 5
    email: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Alarms(pulumi.ComponentResource):
    """ALB 5xx and unhealthy hosts, DB lag/CPU/storage, Redis lag/evictions, search status."""

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

        def alarm(
            suffix: str,
            namespace: str,
            metric: str,
            dimensions: Mapping[str, pulumi.Input[str]],
            comparison: str,
            threshold: float,
            statistic: str = "Maximum",
            periods: int = 2,
            description: str = "",
        ) -> None:
            cloudwatch.MetricAlarm(
                f"{name}-{suffix}",
                namespace=namespace,
                metric_name=metric,
                dimensions=dimensions,
                statistic=statistic,
                period=60,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=comparison,
                threshold=threshold,
                treat_missing_data="notBreaching",
                alarm_description=description or f"{metric} {comparison} {threshold}",
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                tags=args.tags,
                opts=child,
            )

        above = "GreaterThanThreshold"
        below = "LessThanThreshold"
        alb = {"LoadBalancer": args.alb_arn_suffix}
        alarm("alb-5xx", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", alb, above, 10, "Sum")
        alarm(
            "target-5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", alb, above, 10, "Sum"
        )
        alarm(
            "unhealthy-hosts",
            "AWS/ApplicationELB",
            "UnHealthyHostCount",
            {**alb, "TargetGroup": args.target_group_arn_suffix},
            above,
            0,
        )

        db_key = "DBClusterIdentifier" if args.db_is_cluster else "DBInstanceIdentifier"
        db = {db_key: args.db_primary}
        alarm("db-cpu", "AWS/RDS", "CPUUtilization", db, above, args.cpu_percent, "Average", 5)
        alarm(
            "db-free-storage",
            "AWS/RDS",
            "FreeStorageSpace",
            db,
            below,
            args.free_storage_gb * 1024**3,
            "Minimum",
        )
        if args.db_is_cluster:
            alarm("db-replica-lag", "AWS/RDS", "ReplicaLag", db, above, args.replica_lag_s * 1000)
        for i, replica in enumerate(args.db_replicas):
            alarm(
                f"db-replica-{i + 1}-lag",
                "AWS/RDS",
                "ReplicaLag",
                {"DBInstanceIdentifier": replica},
                above,
                args.replica_lag_s,
            )

        for member in args.cache_members:
            cluster = {"CacheClusterId": member}
            alarm(
                f"{member}-replication-lag", "AWS/ElastiCache", "ReplicationLag", cluster, above, 5
            )
            alarm(f"{member}-evictions", "AWS/ElastiCache", "Evictions", cluster, above, 0, "Sum")

        search = {"DomainName": args.search_domain, "ClientId": args.account_id}
        alarm("search-red", "AWS/ES", "ClusterStatus.red", search, above, 0, periods=1)
        alarm("search-yellow", "AWS/ES", "ClusterStatus.yellow", search, above, 0, periods=5)

        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})
