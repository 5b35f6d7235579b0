"""Back-office tier: workers that drain the order queue into the back office's own
database (never the storefront's primary), on their own Auto Scaling group over every
AZ, with their order API (``GET /orders/{id}``) behind an internal ALB."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws.lb as lb

from infra.app_tier import BACKOFFICE, AppTier, AppTierArgs, QueueBacklog
from infra.database import Database, DatabaseArgs, dsn
from infra.security import BACKOFFICE_PORT

BACKOFFICE_DB = "backoffice"  # its database name and user


@dataclass
class BackOfficeArgs:
    stack: str
    vpc_id: pulumi.Input[str]
    availability_zones: list[str]
    app_subnet_ids: list[pulumi.Output[str]]
    data_subnet_ids: list[pulumi.Output[str]]
    worker_sg_id: pulumi.Input[str]
    db_sg_id: pulumi.Input[str]
    alb_sg_id: pulumi.Input[str]
    region: str
    broker_name: pulumi.Input[str]
    queue: str
    settings: pulumi.Input[dict[str, str]]
    queue_secret_arn: pulumi.Input[str]
    instance_type: str
    min_size: int
    max_size: int
    #: Messages waiting per worker that target tracking keeps: half of what a worker
    #: applies within the age objective, so that a worker clears its share in time.
    backlog_per_worker: int
    db_instance_class: str
    db_storage_gb: int
    db_engine_version: str = "15"
    package: str = "peakready"
    protected: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class BackOffice(pulumi.ComponentResource):
    """The back office's database (Multi-AZ, with a replica its reports read), its worker
    group scaled on the queue's backlog, and the internal ALB of its order API."""

    group_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    db_primary: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackOfficeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:backoffice:BackOffice", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "peakready:tier": "backoffice"}

        database = Database(
            f"{name}-db",
            DatabaseArgs(
                identifier=f"peakready-{args.stack}-backoffice",
                availability_zones=args.availability_zones,
                data_subnet_ids=args.data_subnet_ids,
                security_group_id=args.db_sg_id,
                engine_version=args.db_engine_version,
                instance_class=args.db_instance_class,
                replicas=1,  # the back office's reports read it, never the primary
                storage_gb=args.db_storage_gb,
                protected=args.protected,
                db_name=BACKOFFICE_DB,
                db_user=BACKOFFICE_DB,
                tags=tags,
            ),
            opts=child,
        )
        alb = lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=True,
            subnets=args.app_subnet_ids,
            security_groups=[args.alb_sg_id],
            enable_deletion_protection=args.protected,
            enable_cross_zone_load_balancing=True,
            drop_invalid_header_fields=True,
            tags=tags,
            opts=child,
        )
        target_group = lb.TargetGroup(
            f"{name}-workers",
            vpc_id=args.vpc_id,
            port=BACKOFFICE_PORT,
            protocol="HTTP",
            target_type="instance",
            deregistration_delay=10,
            health_check=lb.TargetGroupHealthCheckArgs(
                path="/healthz", protocol="HTTP", port="traffic-port", matcher="200"
            ),
            tags=tags,
            opts=child,
        )
        lb.Listener(
            f"{name}-http",
            load_balancer_arn=alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
            ],
            opts=child,
        )
        settings = pulumi.Output.all(
            args.settings, database.writer_host, pulumi.Output.all(*database.reader_hosts)
        ).apply(
            lambda v: {
                **v[0],
                "HOST": "0.0.0.0",
                "PORT": str(BACKOFFICE_PORT),
                "DB_DSN": dsn([v[1]], BACKOFFICE_DB, BACKOFFICE_DB, "read-write"),
                "REPORT_DSN": dsn(v[2] or [v[1]], BACKOFFICE_DB, BACKOFFICE_DB),
            }
        )
        workers = AppTier(
            f"{name}-workers",
            AppTierArgs(
                group_name=f"backoffice-{args.stack}",
                app_subnet_ids=args.app_subnet_ids,
                security_group_id=args.worker_sg_id,
                target_group_arn=target_group.arn,
                request_count_label=None,
                instance_type=args.instance_type,
                min_size=args.min_size,
                max_size=args.max_size,
                target_requests_per_target=1,
                region=args.region,
                settings=settings,
                secret_arns=pulumi.Output.all(
                    database.master_secret_arn, args.queue_secret_arn
                ).apply(lambda arns: {"DB_PASSWORD": arns[0], "QUEUE_PASSWORD": arns[1]}),
                package=args.package,
                service=BACKOFFICE,
                backlog=QueueBacklog(args.broker_name, args.queue, args.backlog_per_worker),
                tags=tags,
            ),
            opts=child,
        )
        self.group_name = workers.group_name
        self.endpoint = alb.dns_name.apply(lambda host: f"http://{host}")
        self.db_primary = database.primary_identifier
        self.register_outputs(
            {
                "group_name": self.group_name,
                "endpoint": self.endpoint,
                "db_primary": self.db_primary,
            }
        )
