"""Load balancer tier: an internet-facing ALB in every AZ, its target group and listeners."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws.elb as elb
import pulumi_aws.lb as lb
import pulumi_aws.s3 as s3
import pulumi_aws.wafv2 as wafv2

from infra.security import APP_PORT
from infra.storage import private_bucket

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclass
class LoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    public_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    health_check_path: str = "/readyz"
    health_check_interval_s: int = 5
    deregistration_delay_s: int = 10
    idle_timeout_s: int = 60
    certificate_arn: str | None = None
    rate_limit_per_ip: int | None = None
    protected: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class LoadBalancer(pulumi.ComponentResource):
    """ALB with access logs; HTTPS (HTTP redirects) when a certificate is set, else HTTP."""

    endpoint: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    target_group_arn_suffix: pulumi.Output[str]

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:load_balancer:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        logs = private_bucket(f"{name}-access-logs", not args.protected, tags, child)
        log_writer = elb.get_service_account_output()
        policy = s3.BucketPolicy(
            f"{name}-access-logs",
            bucket=logs.id,
            policy=pulumi.Output.all(logs.arn, log_writer.arn).apply(
                lambda values: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "AlbAccessLogs",
                                "Effect": "Allow",
                                "Principal": {"AWS": values[1]},
                                "Action": "s3:PutObject",
                                "Resource": f"{values[0]}/alb/*",
                            },
                            {
                                "Sid": "TlsOnly",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [values[0], f"{values[0]}/*"],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            },
                        ],
                    }
                )
            ),
            opts=child,
        )

        alb = lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            subnets=args.public_subnet_ids,
            security_groups=[args.security_group_id],
            enable_deletion_protection=args.protected,
            enable_cross_zone_load_balancing=True,
            drop_invalid_header_fields=True,
            idle_timeout=args.idle_timeout_s,
            access_logs=lb.LoadBalancerAccessLogsArgs(bucket=logs.id, prefix="alb", enabled=True),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        target_group = lb.TargetGroup(
            f"{name}-app",
            vpc_id=args.vpc_id,
            port=APP_PORT,
            protocol="HTTP",
            target_type="instance",
            deregistration_delay=args.deregistration_delay_s,
            health_check=lb.TargetGroupHealthCheckArgs(
                path=args.health_check_path,
                protocol="HTTP",
                port="traffic-port",
                interval=args.health_check_interval_s,
                timeout=max(2, args.health_check_interval_s - 1),
                healthy_threshold=2,
                unhealthy_threshold=2,
                matcher="200",
            ),
            tags=tags,
            opts=child,
        )
        forward = [lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)]
        if args.certificate_arn:
            lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=args.certificate_arn,
                default_actions=forward,
                opts=child,
            )
            lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    lb.ListenerDefaultActionArgs(
                        type="redirect",
                        redirect=lb.ListenerDefaultActionRedirectArgs(
                            port="443", protocol="HTTPS", status_code="HTTP_301"
                        ),
                    )
                ],
                opts=child,
            )
            scheme = "https"
        else:
            lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=forward,
                opts=child,
            )
            scheme = "http"

        if args.rate_limit_per_ip is not None:
            web_acl(name, alb.arn, args.rate_limit_per_ip, tags, child)

        self.endpoint = alb.dns_name.apply(lambda dns: f"{scheme}://{dns}")
        self.arn_suffix = alb.arn_suffix
        self.target_group_arn = target_group.arn
        self.target_group_arn_suffix = target_group.arn_suffix
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "arn_suffix": self.arn_suffix,
                "target_group_arn": self.target_group_arn,
                "target_group_arn_suffix": self.target_group_arn_suffix,
            }
        )


def web_acl(
    name: str,
    alb_arn: pulumi.Input[str],
    limit: int,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> wafv2.WebAcl:
    """A WAF web ACL on the ALB: one client IP past ``limit`` requests in 5 minutes gets a
    429 with Retry-After (the bot hammering one product), everything else passes."""

    def seen(metric: str) -> wafv2.WebAclVisibilityConfigArgs:
        return wafv2.WebAclVisibilityConfigArgs(
            cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
        )

    acl = wafv2.WebAcl(
        f"{name}-waf",
        scope="REGIONAL",
        default_action=wafv2.WebAclDefaultActionArgs(allow=wafv2.WebAclDefaultActionAllowArgs()),
        rules=[
            wafv2.WebAclRuleArgs(
                name="rate-per-client-ip",
                priority=0,
                action=wafv2.WebAclRuleActionArgs(
                    block=wafv2.WebAclRuleActionBlockArgs(
                        custom_response=wafv2.WebAclRuleActionBlockCustomResponseArgs(
                            response_code=429,
                            response_headers=[
                                wafv2.WebAclRuleActionBlockCustomResponseResponseHeaderArgs(
                                    name="Retry-After", value="60"
                                )
                            ],
                        )
                    )
                ),
                statement=wafv2.WebAclRuleStatementArgs(
                    rate_based_statement=wafv2.WebAclRuleStatementRateBasedStatementArgs(
                        aggregate_key_type="IP", limit=limit
                    )
                ),
                visibility_config=wafv2.WebAclRuleVisibilityConfigArgs(
                    cloudwatch_metrics_enabled=True,
                    metric_name=f"{name}-rate-per-client-ip",
                    sampled_requests_enabled=True,
                ),
            )
        ],
        visibility_config=seen(f"{name}-waf"),
        tags=tags,
        opts=opts,
    )
    wafv2.WebAclAssociation(f"{name}-waf", resource_arn=alb_arn, web_acl_arn=acl.arn, opts=opts)
    return acl
