"""Network tier: a VPC over every AZ with public, private-app and isolated-data subnets."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws.cloudwatch as cloudwatch
import pulumi_aws.ec2 as ec2
import pulumi_aws.iam as iam

from infra.trust import service_trust_policy

#: Subnet blocks are carved as /(prefix + 5): public from block 0, app from 8, data from 16.
_SUBNET_BITS = 5
_TIER_OFFSETS = {"public": 0, "app": 8, "data": 16}


def subnet_cidr(vpc_cidr: str, tier: str, az_index: int) -> str:
    """The CIDR of ``tier``'s subnet in AZ ``az_index`` (at most 8 AZs per tier)."""
    network = ipaddress.ip_network(vpc_cidr)
    blocks = list(network.subnets(prefixlen_diff=_SUBNET_BITS))
    return str(blocks[_TIER_OFFSETS[tier] + az_index])


@dataclass
class NetworkArgs:
    cidr: str
    availability_zones: list[str]
    single_nat_gateway: bool = False
    flow_logs_retention_days: int = 30
    tags: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    """VPC, three subnets per AZ, a NAT gateway per AZ (one for dev), VPC flow logs."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    app_subnet_ids: list[pulumi.Output[str]]
    data_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        vpc = ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        igw = ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        public_rt = ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{name}-public"},
            opts=child,
        )

        self.public_subnet_ids, self.app_subnet_ids, self.data_subnet_ids = [], [], []
        nat_ids: list[pulumi.Output[str]] = []
        for i, az in enumerate(args.availability_zones):
            public = self._subnet(name, "public", i, az, vpc, args)
            ec2.RouteTableAssociation(
                f"{name}-public-{az}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            if not args.single_nat_gateway or i == 0:
                eip = ec2.Eip(f"{name}-nat-{az}", domain="vpc", tags=tags, opts=child)
                nat = ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags={**tags, "Name": f"{name}-nat-{az}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)
            app = self._subnet(name, "app", i, az, vpc, args)
            app_rt = ec2.RouteTable(
                f"{name}-app-{az}",
                vpc_id=vpc.id,
                routes=[
                    ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[-1])
                ],
                tags={**tags, "Name": f"{name}-app-{az}"},
                opts=child,
            )
            ec2.RouteTableAssociation(
                f"{name}-app-{az}", subnet_id=app.id, route_table_id=app_rt.id, opts=child
            )
            # Data subnets are isolated: their route table has no default route at all.
            data = self._subnet(name, "data", i, az, vpc, args)
            data_rt = ec2.RouteTable(
                f"{name}-data-{az}",
                vpc_id=vpc.id,
                tags={**tags, "Name": f"{name}-data-{az}"},
                opts=child,
            )
            ec2.RouteTableAssociation(
                f"{name}-data-{az}", subnet_id=data.id, route_table_id=data_rt.id, opts=child
            )
            self.public_subnet_ids.append(public.id)
            self.app_subnet_ids.append(app.id)
            self.data_subnet_ids.append(data.id)

        log_group = cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=args.flow_logs_retention_days,
            tags=tags,
            opts=child,
        )
        role = iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=service_trust_policy("vpc-flow-logs.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=log_group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": f"{arn}:*",
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags,
            opts=child,
        )

        self.vpc_id = vpc.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "app_subnet_ids": self.app_subnet_ids,
                "data_subnet_ids": self.data_subnet_ids,
            }
        )

    def _subnet(
        self, name: str, tier: str, index: int, az: str, vpc: ec2.Vpc, args: NetworkArgs
    ) -> ec2.Subnet:
        return ec2.Subnet(
            f"{name}-{tier}-{az}",
            vpc_id=vpc.id,
            cidr_block=subnet_cidr(args.cidr, tier, index),
            availability_zone=az,
            map_public_ip_on_launch=False,
            tags={**args.tags, "Name": f"{name}-{tier}-{az}", "peakready:tier": tier},
            opts=pulumi.ResourceOptions(parent=self),
        )
