"""Search tier: an OpenSearch domain in the VPC with zone awareness and dedicated masters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws.opensearch as opensearch


@dataclass
class SearchArgs:
    domain_name: str
    region: str
    account_id: pulumi.Input[str]
    availability_zones: list[str]
    data_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    instance_type: str
    instance_count: int = 3
    dedicated_master_type: str | None = None
    dedicated_master_count: int = 3
    volume_gb: int = 20
    engine_version: str = "OpenSearch_2.17"
    tags: dict[str, str] = field(default_factory=dict)


class Search(pulumi.ComponentResource):
    """Encrypted at rest and node to node, HTTPS only, reachable only from the app tier."""

    domain_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]

    def __init__(
        self, name: str, args: SearchArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:search:Search", name, None, opts)
        # OpenSearch zone awareness spans two or three AZs, one subnet in each.
        zones = min(3, len(args.availability_zones))
        masters = args.dedicated_master_count if args.dedicated_master_type else 0
        domain_arn = pulumi.Output.concat(
            "arn:aws:es:", args.region, ":", args.account_id, ":domain/", args.domain_name, "/*"
        )
        domain = opensearch.Domain(
            f"{name}-domain",
            domain_name=args.domain_name,
            engine_version=args.engine_version,
            cluster_config=opensearch.DomainClusterConfigArgs(
                instance_type=args.instance_type,
                instance_count=args.instance_count,
                zone_awareness_enabled=True,
                zone_awareness_config=opensearch.DomainClusterConfigZoneAwarenessConfigArgs(
                    availability_zone_count=zones
                ),
                dedicated_master_enabled=masters > 0,
                dedicated_master_type=args.dedicated_master_type if masters else None,
                dedicated_master_count=masters or None,
            ),
            ebs_options=opensearch.DomainEbsOptionsArgs(
                ebs_enabled=True, volume_type="gp3", volume_size=args.volume_gb
            ),
            encrypt_at_rest=opensearch.DomainEncryptAtRestArgs(enabled=True),
            node_to_node_encryption=opensearch.DomainNodeToNodeEncryptionArgs(enabled=True),
            domain_endpoint_options=opensearch.DomainDomainEndpointOptionsArgs(
                enforce_https=True, tls_security_policy="Policy-Min-TLS-1-2-PFS-2023-10"
            ),
            vpc_options=opensearch.DomainVpcOptionsArgs(
                subnet_ids=args.data_subnet_ids[:zones],
                security_group_ids=[args.security_group_id],
            ),
            # Inside the VPC the security-group chain is the network boundary; the policy
            # limits the principal to this account.
            access_policies=pulumi.Output.all(args.account_id, domain_arn).apply(
                lambda values: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": f"arn:aws:iam::{values[0]}:root"},
                                "Action": "es:ESHttp*",
                                "Resource": values[1],
                            }
                        ],
                    }
                )
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.domain_name = domain.domain_name
        self.endpoint = domain.endpoint
        self.register_outputs({"domain_name": self.domain_name, "endpoint": self.endpoint})
