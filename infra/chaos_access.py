"""Chaos access: the IAM role AWS FIS assumes for the AZ power-interruption drill."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws.iam as iam

from infra.trust import service_trust_policy

#: AWS-managed FIS policies for the actions of "AZ Availability: Power Interruption".
FIS_MANAGED_POLICIES = (
    "AWSFaultInjectionSimulatorEC2Access",
    "AWSFaultInjectionSimulatorNetworkAccess",
    "AWSFaultInjectionSimulatorRDSAccess",
)


@dataclass
class ChaosAccessArgs:
    role_name: str
    stack: str
    tags: dict[str, str] = field(default_factory=dict)


class ChaosAccess(pulumi.ComponentResource):
    """A role only FIS can assume, limited to the actions peakready's drills start.

    ElastiCache's AZ power interruption has no managed policy; an inline policy allows
    it only on replication groups tagged with this stack.
    """

    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ChaosAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:chaos_access:ChaosAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = iam.Role(
            f"{name}-fis-role",
            name=args.role_name,
            assume_role_policy=service_trust_policy("fis.amazonaws.com"),
            tags=args.tags,
            opts=child,
        )
        for policy in FIS_MANAGED_POLICIES:
            iam.RolePolicyAttachment(
                f"{name}-{policy.removeprefix('AWSFaultInjectionSimulator').lower()}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/service-role/{policy}",
                opts=child,
            )
        iam.RolePolicy(
            f"{name}-elasticache",
            role=role.id,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "elasticache:InterruptClusterAzPower",
                            "Resource": "arn:aws:elasticache:*:*:replicationgroup:*",
                            "Condition": {
                                "StringEquals": {"aws:ResourceTag/peakready:stack": args.stack}
                            },
                        },
                        {
                            "Effect": "Allow",
                            "Action": [
                                "elasticache:DescribeReplicationGroups",
                                "tag:GetResources",
                            ],
                            "Resource": "*",
                        },
                    ],
                }
            ),
            opts=child,
        )
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn})
