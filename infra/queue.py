"""Queue tier: Amazon MQ for RabbitMQ, three brokers over the AZs (``CLUSTER_MULTI_AZ``),
in the isolated data subnets, its password generated here and kept as a secret."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws.mq as mq

from infra.generated import generated_password

#: Amazon MQ's names for the topology's deployments.
DEPLOYMENT_MODES = {"cluster-multi-az": "CLUSTER_MULTI_AZ", "single-instance": "SINGLE_INSTANCE"}
QUEUE_USER = "peakready"


@dataclass
class QueueArgs:
    broker_name: str
    data_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    engine_version: str
    instance_type: str
    deployment: str = "cluster-multi-az"
    tags: dict[str, str] = field(default_factory=dict)


class Queue(pulumi.ComponentResource):
    """The broker, not public, with general logs on and minor upgrades applied in a window."""

    broker_id: pulumi.Output[str]
    broker_name: pulumi.Output[str]
    amqp_endpoint: pulumi.Output[str]
    password_secret_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: QueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:queue:Queue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        mode = DEPLOYMENT_MODES[args.deployment]
        # Amazon MQ wants 12 or more characters, and none of ',', ':', '='.
        password, secret_arn = generated_password(
            f"{name}-password",
            f"AMQP password of broker {args.broker_name} (user {QUEUE_USER})",
            32,
            args.tags,
            child,
        )
        broker = mq.Broker(
            f"{name}-broker",
            broker_name=args.broker_name,
            engine_type="RabbitMQ",
            engine_version=args.engine_version,
            host_instance_type=args.instance_type,
            deployment_mode=mode,
            # A single broker lives in one subnet; a cluster spreads over every AZ's.
            subnet_ids=args.data_subnet_ids
            if mode == "CLUSTER_MULTI_AZ"
            else args.data_subnet_ids[:1],
            security_groups=[args.security_group_id],
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
            # Amazon MQ for RabbitMQ encrypts at rest with an AWS-owned key (no other choice).
            encryption_options=mq.BrokerEncryptionOptionsArgs(use_aws_owned_key=True),
            logs=mq.BrokerLogsArgs(general=True),
            maintenance_window_start_time=mq.BrokerMaintenanceWindowStartTimeArgs(
                day_of_week="SUNDAY", time_of_day="05:00", time_zone="UTC"
            ),
            users=pulumi.Output.secret([mq.BrokerUserArgs(username=QUEUE_USER, password=password)]),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["users"]),
        )
        self.broker_id = broker.id
        self.broker_name = broker.broker_name
        self.amqp_endpoint = broker.instances.apply(
            lambda instances: (instances[0].endpoints or [""])[0] if instances else ""
        )
        self.password_secret_arn = secret_arn
        self.register_outputs(
            {
                "broker_id": self.broker_id,
                "amqp_endpoint": self.amqp_endpoint,
                "password_secret_arn": self.password_secret_arn,
            }
        )
