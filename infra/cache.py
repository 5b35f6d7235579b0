"""Cache tier: an ElastiCache Redis replication group, Multi-AZ with automatic failover."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws.elasticache as elasticache

from infra.generated import generated_password
from infra.security import CACHE_PORT


@dataclass
class CacheArgs:
    group_id: str
    availability_zones: list[str]
    data_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    node_type: str
    replicas: int = 2
    snapshot_retention_days: int = 1
    engine_version: str = "7.1"
    tags: dict[str, str] = field(default_factory=dict)


def node_zones(availability_zones: list[str], nodes: int) -> list[str]:
    """Preferred AZ per node: the primary in the first AZ, replicas round-robin after it."""
    return [availability_zones[i % len(availability_zones)] for i in range(nodes)]


class Cache(pulumi.ComponentResource):
    """Redis with TLS and an AUTH token generated here, kept as a Pulumi and AWS secret."""

    group_id: pulumi.Output[str]
    primary_endpoint: pulumi.Output[str]
    auth_secret_arn: pulumi.Output[str]
    member_ids: list[str]

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:cache:Cache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        nodes = 1 + args.replicas

        token, secret_arn = generated_password(
            f"{name}-auth-token",
            f"AUTH token of Redis replication group {args.group_id}",
            48,
            args.tags,
            child,
        )
        subnets = elasticache.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.data_subnet_ids,
            description=f"data subnets of {args.group_id}",
            tags=args.tags,
            opts=child,
        )
        group = elasticache.ReplicationGroup(
            f"{name}-redis",
            replication_group_id=args.group_id,
            description=f"peakready cache {args.group_id}",
            engine="redis",
            engine_version=args.engine_version,
            node_type=args.node_type,
            num_cache_clusters=nodes,
            preferred_cache_cluster_azs=node_zones(args.availability_zones, nodes),
            automatic_failover_enabled=nodes > 1,
            multi_az_enabled=nodes > 1,
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            auth_token=token,
            port=CACHE_PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[args.security_group_id],
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window="01:00-02:00",
            maintenance_window="sun:05:00-sun:06:00",
            auto_minor_version_upgrade=True,
            tags=args.tags,
            opts=child,
        )

        self.group_id = group.replication_group_id
        self.primary_endpoint = group.primary_endpoint_address
        self.auth_secret_arn = secret_arn
        self.member_ids = [f"{args.group_id}-{i + 1:03d}" for i in range(nodes)]
        self.register_outputs(
            {
                "group_id": self.group_id,
                "primary_endpoint": self.primary_endpoint,
                "auth_secret_arn": self.auth_secret_arn,
            }
        )
