"""Security groups as a least-privilege chain: internet → ALB → app → database, cache, search.

Only the ALB accepts traffic from the internet (80/443). Each later hop accepts traffic
only from the security group before it, on its one port; data tiers have no egress.
With the order pipeline: app → queue ← back-office workers → the back office's own
database; the workers' order API is reached through an internal ALB from inside the VPC.
Rules are separate resources so the groups can reference each other without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws.ec2 as ec2
import pulumi_aws.vpc as vpc

APP_PORT = 8000
DB_PORT = 5432
CACHE_PORT = 6379
SEARCH_PORT = 443
QUEUE_PORT = 5671  # AMQP over TLS: Amazon MQ for RabbitMQ accepts nothing else
BACKOFFICE_PORT = 8001


@dataclass
class SecurityChainArgs:
    vpc_id: pulumi.Input[str]
    vpc_cidr: str = "10.40.0.0/16"
    #: The order pipeline's hops (queue, back-office workers, their database and ALB).
    queue: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class SecurityChain(pulumi.ComponentResource):
    """One security group per hop, and exactly the rules that link consecutive hops."""

    alb_sg_id: pulumi.Output[str]
    app_sg_id: pulumi.Output[str]
    db_sg_id: pulumi.Output[str]
    cache_sg_id: pulumi.Output[str]
    search_sg_id: pulumi.Output[str]
    queue_sg_id: pulumi.Output[str] | None = None
    worker_sg_id: pulumi.Output[str] | None = None
    backoffice_db_sg_id: pulumi.Output[str] | None = None
    backoffice_alb_sg_id: pulumi.Output[str] | None = None

    def __init__(
        self, name: str, args: SecurityChainArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:security:SecurityChain", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def group(hop: str, description: str) -> ec2.SecurityGroup:
            return ec2.SecurityGroup(
                f"{name}-{hop}",
                vpc_id=args.vpc_id,
                description=description,
                tags={**args.tags, "Name": f"{name}-{hop}", "peakready:hop": hop},
                opts=child,
            )

        alb = group("alb", "ALB: HTTP/HTTPS from the internet")
        app = group("app", "storefront instances: from the ALB only")
        db = group("db", "PostgreSQL: from the app tier only")
        cache = group("cache", "Redis: from the app tier only")
        search = group("search", "OpenSearch: from the app tier only")

        for port in (80, 443):
            vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}",
                security_group_id=alb.id,
                description=f"internet to ALB :{port}",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4="0.0.0.0/0",
                opts=child,
            )
        self._link(name, "alb", alb, "app", app, APP_PORT)
        for hop, sg, port in (("db", db, DB_PORT), ("cache", cache, CACHE_PORT)):
            self._link(name, "app", app, hop, sg, port)
        self._link(name, "app", app, "search", search, SEARCH_PORT)
        # Instances reach package mirrors and AWS APIs (Secrets Manager) through the NAT.
        self._egress_https(name, "app", app)
        if args.queue:
            queue = group("queue", "Amazon MQ: from the app and back-office tiers only")
            worker = group("worker", "back-office workers: from their internal ALB only")
            bo_db = group("backoffice-db", "back-office PostgreSQL: from its workers only")
            bo_alb = group("backoffice-alb", "back-office order API: from inside the VPC only")
            self._link(name, "app", app, "queue", queue, QUEUE_PORT)
            self._link(name, "worker", worker, "queue", queue, QUEUE_PORT)
            self._link(name, "worker", worker, "backoffice-db", bo_db, DB_PORT)
            self._link(name, "backoffice-alb", bo_alb, "worker", worker, BACKOFFICE_PORT)
            vpc.SecurityGroupIngressRule(
                f"{name}-backoffice-alb-in",
                security_group_id=bo_alb.id,
                description="VPC to the back-office order API :80",
                ip_protocol="tcp",
                from_port=80,
                to_port=80,
                cidr_ipv4=args.vpc_cidr,
                opts=child,
            )
            self._egress_https(name, "worker", worker)
            self.queue_sg_id = queue.id
            self.worker_sg_id = worker.id
            self.backoffice_db_sg_id = bo_db.id
            self.backoffice_alb_sg_id = bo_alb.id

        self.alb_sg_id = alb.id
        self.app_sg_id = app.id
        self.db_sg_id = db.id
        self.cache_sg_id = cache.id
        self.search_sg_id = search.id
        self.register_outputs(
            {
                "alb_sg_id": self.alb_sg_id,
                "app_sg_id": self.app_sg_id,
                "db_sg_id": self.db_sg_id,
                "cache_sg_id": self.cache_sg_id,
                "search_sg_id": self.search_sg_id,
            }
        )

    def _egress_https(self, name: str, hop: str, sg: ec2.SecurityGroup) -> None:
        vpc.SecurityGroupEgressRule(
            f"{name}-{hop}-out-https",
            security_group_id=sg.id,
            description=f"{hop} to AWS APIs and package mirrors via NAT",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _link(
        self,
        name: str,
        src_name: str,
        src: ec2.SecurityGroup,
        dst_name: str,
        dst: ec2.SecurityGroup,
        port: int,
    ) -> None:
        """Allow ``src`` → ``dst`` on ``port``: egress on one side, ingress on the other."""
        child = pulumi.ResourceOptions(parent=self)
        vpc.SecurityGroupEgressRule(
            f"{name}-{src_name}-to-{dst_name}",
            security_group_id=src.id,
            description=f"{src_name} to {dst_name} :{port}",
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=dst.id,
            opts=child,
        )
        vpc.SecurityGroupIngressRule(
            f"{name}-{dst_name}-from-{src_name}",
            security_group_id=dst.id,
            description=f"{dst_name} from {src_name} :{port}",
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=src.id,
            opts=child,
        )
