"""Database tier: PostgreSQL, a Multi-AZ primary with replicas in the other AZs, or a
Multi-AZ DB cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws.rds as rds

from infra.security import DB_PORT

DB_NAME = "shop"
DB_USER = "shop"


@dataclass
class DatabaseArgs:
    identifier: str
    availability_zones: list[str]
    data_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    engine_version: str
    instance_class: str
    deployment: str = "multi-az-instance"
    replicas: int = 1
    storage_gb: int = 50
    backup_retention_days: int = 7
    protected: bool = False
    db_name: str = DB_NAME
    db_user: str = DB_USER
    tags: dict[str, str] = field(default_factory=dict)


def dsn(
    hosts: list[str], db: str = DB_NAME, user: str = DB_USER, session: str | None = None
) -> str:
    """A libpq connection string over TLS to ``hosts`` (tried in order); ``session``:
    the ``target_session_attrs`` that picks one of them."""
    attrs = f" target_session_attrs={session}" if session else ""
    return (
        f"host={','.join(hosts)} port={DB_PORT} dbname={db} user={user} sslmode=require"
        f"{attrs} connect_timeout=2"
    )


def replica_zones(availability_zones: list[str], replicas: int) -> list[str]:
    """AZs for read replicas: round-robin over every AZ but the first (the primary's)."""
    others = availability_zones[1:] or availability_zones
    return [others[i % len(others)] for i in range(replicas)]


class Database(pulumi.ComponentResource):
    """Encrypted PostgreSQL with a managed master password, PITR and Performance Insights."""

    primary_identifier: pulumi.Output[str]
    replica_identifiers: list[pulumi.Output[str]]
    writer_host: pulumi.Output[str]
    reader_hosts: list[pulumi.Output[str]]
    master_secret_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:database:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        major = args.engine_version.split(".")[0]
        # Backed up by AWS Backup's tag selection as well as by RDS itself (PITR).
        tags = {**args.tags, "peakready:backup": "true"}

        subnets = rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=args.data_subnet_ids, tags=tags, opts=child
        )
        parameters = [
            rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1"),
            rds.ParameterGroupParameterArgs(name="log_min_duration_statement", value="500"),
            rds.ParameterGroupParameterArgs(
                name="idle_in_transaction_session_timeout", value="60000"
            ),
        ]
        common: dict[str, Any] = {
            "engine_version": args.engine_version,
            "storage_encrypted": True,
            "deletion_protection": args.protected,
            "copy_tags_to_snapshot": True,
            "performance_insights_enabled": True,
            "auto_minor_version_upgrade": True,
            "publicly_accessible": False,
        }

        self.replica_identifiers = []
        self.reader_hosts = []
        if args.deployment == "multi-az-cluster":
            cluster_params = rds.ClusterParameterGroup(
                f"{name}-params",
                family=f"postgres{major}",
                parameters=[
                    rds.ClusterParameterGroupParameterArgs(name=p.name, value=p.value)
                    for p in parameters
                ],
                tags=tags,
                opts=child,
            )
            cluster = rds.Cluster(
                f"{name}-cluster",
                cluster_identifier=args.identifier,
                engine="postgres",
                db_cluster_instance_class=args.instance_class,
                storage_type="gp3",
                allocated_storage=args.storage_gb,
                availability_zones=args.availability_zones[:3],
                db_subnet_group_name=subnets.name,
                vpc_security_group_ids=[args.security_group_id],
                db_cluster_parameter_group_name=cluster_params.name,
                database_name=args.db_name,
                master_username=args.db_user,
                manage_master_user_password=True,
                port=DB_PORT,
                backup_retention_period=args.backup_retention_days,
                preferred_backup_window="02:00-03:00",
                skip_final_snapshot=not args.protected,
                final_snapshot_identifier=f"{args.identifier}-final",
                tags=tags,
                **common,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protected),
            )
            self.primary_identifier = cluster.cluster_identifier
            self.writer_host = cluster.endpoint
            self.reader_hosts = [cluster.reader_endpoint]
            self.master_secret_arn = cluster.master_user_secrets[0].secret_arn
        else:
            params = rds.ParameterGroup(
                f"{name}-params",
                family=f"postgres{major}",
                parameters=parameters,
                tags=tags,
                opts=child,
            )
            primary = rds.Instance(
                f"{name}-primary",
                identifier=args.identifier,
                engine="postgres",
                instance_class=args.instance_class,
                multi_az=True,
                allocated_storage=args.storage_gb,
                max_allocated_storage=args.storage_gb * 2,
                storage_type="gp3",
                db_subnet_group_name=subnets.name,
                vpc_security_group_ids=[args.security_group_id],
                parameter_group_name=params.name,
                db_name=args.db_name,
                username=args.db_user,
                manage_master_user_password=True,
                port=DB_PORT,
                backup_retention_period=args.backup_retention_days,
                backup_window="02:00-03:00",
                maintenance_window="sun:04:00-sun:05:00",
                enabled_cloudwatch_logs_exports=["postgresql"],
                skip_final_snapshot=not args.protected,
                final_snapshot_identifier=f"{args.identifier}-final",
                tags=tags,
                **common,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protected),
            )
            for i, az in enumerate(replica_zones(args.availability_zones, args.replicas)):
                replica = rds.Instance(
                    f"{name}-replica-{i + 1}",
                    identifier=f"{args.identifier}-replica-{i + 1}",
                    replicate_source_db=primary.identifier,
                    instance_class=args.instance_class,
                    availability_zone=az,
                    vpc_security_group_ids=[args.security_group_id],
                    parameter_group_name=params.name,
                    # Replicas keep their own backups so a promoted replica keeps PITR.
                    backup_retention_period=args.backup_retention_days,
                    skip_final_snapshot=True,
                    tags={**tags, "peakready:role": "replica"},
                    **common,
                    opts=child,
                )
                self.replica_identifiers.append(replica.identifier)
                self.reader_hosts.append(replica.address)
            self.primary_identifier = primary.identifier
            self.writer_host = primary.address
            self.master_secret_arn = primary.master_user_secrets[0].secret_arn

        self.register_outputs(
            {
                "primary_identifier": self.primary_identifier,
                "replica_identifiers": self.replica_identifiers,
                "writer_host": self.writer_host,
                "reader_hosts": self.reader_hosts,
                "master_secret_arn": self.master_secret_arn,
            }
        )
