"""peakready on AWS: the stack file's topology, one component per tier, the DESIGN §3 outputs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

# Pulumi runs this folder as a script; make `infra.*` and the checkout's `peakready` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi
import pulumi_aws as aws

from infra.alarms import Alarms, AlarmsArgs
from infra.app_tier import AppTier, AppTierArgs, PeakCapacity
from infra.backoffice import BackOffice, BackOfficeArgs
from infra.backup import Backup, BackupArgs
from infra.cache import Cache, CacheArgs
from infra.canary import CanaryArgs, CheckoutCanary
from infra.chaos_access import ChaosAccess, ChaosAccessArgs
from infra.database import Database, DatabaseArgs, dsn
from infra.load_balancer import LoadBalancer, LoadBalancerArgs
from infra.network import Network, NetworkArgs
from infra.queue import QUEUE_USER, Queue, QueueArgs
from infra.search import Search, SearchArgs
from infra.security import CACHE_PORT, QUEUE_PORT, SecurityChain, SecurityChainArgs
from peakready import planner
from peakready.monitoring import alerts
from peakready.topology import DatabaseDeployment, Topology, pinned_now
from peakready.topology import Queue as QueueTier

# ----------------------------------------------------------------- config in
topology = Topology.from_pulumi_config()
stack = topology.stack
azs = topology.az_names
# PEAKREADY_NOW pins "now" for reproducible previews of the pre-warm schedule; each peak
# window is taken as it falls next (a recurring one: this year's, else next year's).
now = pinned_now()
occurrences = [w.occurrence(now or datetime.now(UTC)) for w in topology.peak_windows]
tags = {
    "peakready:stack": stack,
    "peakready:protected": str(topology.protected).lower(),
    "managed-by": "pulumi",
}

# ----------------------------------------------------------------- static stability
capacity = planner.plan_for(topology)
for failure in capacity.failures:
    message = f"not statically stable: {failure.verdict()}"
    (pulumi.log.error if topology.protected else pulumi.log.warn)(message)
if topology.protected and not capacity.stable:
    raise pulumi.RunError(
        f"stack {stack} is protected and not statically stable: refusing to deploy; "
        f"see `peakready plan --stack {stack}`"
    )
account_id = aws.get_caller_identity_output().account_id

# ----------------------------------------------------------------- tiers
network = Network(
    "net",
    NetworkArgs(
        cidr=topology.network.cidr,
        availability_zones=azs,
        single_nat_gateway=topology.network.single_nat_gateway,
        flow_logs_retention_days=topology.network.flow_logs_retention_days,
        tags=tags,
    ),
)
chain = SecurityChain(
    "sg",
    SecurityChainArgs(
        vpc_id=network.vpc_id,
        vpc_cidr=topology.network.cidr,
        queue=topology.queue is not None,
        tags=tags,
    ),
)
lb = topology.load_balancer
entry = LoadBalancer(
    "edge",
    LoadBalancerArgs(
        vpc_id=network.vpc_id,
        public_subnet_ids=network.public_subnet_ids,
        security_group_id=chain.alb_sg_id,
        health_check_path=lb.health_check_path,
        health_check_interval_s=lb.health_check_interval_s,
        deregistration_delay_s=lb.deregistration_delay_s,
        idle_timeout_s=lb.idle_timeout_s,
        certificate_arn=lb.certificate_arn,
        rate_limit_per_ip=lb.rate_limit_per_ip,
        protected=topology.protected,
        tags=tags,
    ),
)
db = topology.database
database = Database(
    "db",
    DatabaseArgs(
        identifier=f"peakready-{stack}",
        availability_zones=azs,
        data_subnet_ids=network.data_subnet_ids,
        security_group_id=chain.db_sg_id,
        engine_version=db.engine_version,
        instance_class=db.instance_class,
        deployment=db.deployment.value,
        replicas=db.replicas,
        storage_gb=db.storage_gb,
        backup_retention_days=db.backup_retention_days,
        protected=topology.protected,
        tags=tags,
    ),
)
cache = Cache(
    "cache",
    CacheArgs(
        group_id=f"peakready-{stack}",
        availability_zones=azs,
        data_subnet_ids=network.data_subnet_ids,
        security_group_id=chain.cache_sg_id,
        node_type=topology.cache.node_type,
        replicas=topology.cache.replicas,
        snapshot_retention_days=topology.cache.snapshot_retention_days,
        tags=tags,
    ),
)
sr = topology.search
search = Search(
    "search",
    SearchArgs(
        domain_name=f"peakready-{stack}",
        region=topology.region,
        account_id=account_id,
        availability_zones=azs,
        data_subnet_ids=network.data_subnet_ids,
        security_group_id=chain.search_sg_id,
        instance_type=sr.instance_type,
        instance_count=sr.instance_count,
        dedicated_master_type=sr.dedicated_master_type,
        dedicated_master_count=sr.dedicated_master_count,
        volume_gb=sr.volume_gb,
        tags=tags,
    ),
)
qt = topology.queue
queue = None
if qt is not None:
    assert chain.queue_sg_id is not None
    queue = Queue(
        "queue",
        QueueArgs(
            broker_name=f"peakready-{stack}",
            data_subnet_ids=network.data_subnet_ids,
            security_group_id=chain.queue_sg_id,
            engine_version=qt.engine_version,
            instance_type=qt.instance_type,
            deployment=qt.deployment.value,
            tags=tags,
        ),
    )


def _queue_settings(endpoint: str) -> dict[str, str]:
    """Where the relay (storefront) and the consumers (back office) find the queue; the
    password comes from its secret, never from these settings."""
    if qt is None:
        return {}
    host = endpoint.removeprefix("amqps://").split(":")[0]
    return {
        "QUEUE_URL": f"amqps://{QUEUE_USER}@{host}:{QUEUE_PORT}/%2F",
        "QUEUE_NAME": qt.queue_name,
    }


def _queue_limits(tier: QueueTier) -> dict[str, str]:
    """The queue's limits, which the back office declares it with."""
    return {
        "QUEUE_MAX_LENGTH": str(tier.max_length),
        "QUEUE_MESSAGE_TTL_S": str(tier.message_ttl_s),
        "QUEUE_DEAD_LETTER": str(tier.dead_letter).lower(),
    }


app_settings = pulumi.Output.all(
    database.writer_host,
    pulumi.Output.all(*database.reader_hosts),
    cache.primary_endpoint,
    search.endpoint,
    queue.amqp_endpoint if queue is not None else "",
).apply(
    lambda v: {
        **_queue_settings(v[4]),
        "HOST": "0.0.0.0",
        "PORT": "8000",
        "DB_DSN": dsn([v[0]], session="read-write"),
        "DB_READ_DSN": dsn([*v[1], v[0]], session="prefer-standby"),
        "REDIS_URL": f"rediss://{v[2]}:{CACHE_PORT}/0",
        "SEARCH_BACKEND": "opensearch",
        "OPENSEARCH_URL": f"https://{v[3]}",
        "MIGRATE": "1",
        # The order and dependency figures the alarms read (peakready.app.cloudwatch).
        "CLOUDWATCH_REGION": topology.region,
        "STACK": stack,
    }
)
# The synthetic checkout; its token (the storefront's audit token) flags its orders.
canary = CheckoutCanary("checkout", CanaryArgs(stack=stack, endpoint=entry.endpoint, tags=tags))
app = topology.app
app_tier = AppTier(
    "app",
    AppTierArgs(
        group_name=f"storefront-{stack}",
        app_subnet_ids=network.app_subnet_ids,
        security_group_id=chain.app_sg_id,
        target_group_arn=entry.target_group_arn,
        request_count_label=pulumi.Output.concat(
            entry.arn_suffix, "/", entry.target_group_arn_suffix
        ),
        instance_type=app.instance_type,
        min_size=app.min_size,
        max_size=app.max_size,
        desired_size=app.desired_size,
        target_requests_per_target=app.target_requests_per_target,
        instance_warmup_s=app.instance_warmup_s,
        region=topology.region,
        settings=app_settings,
        secret_arns=pulumi.Output.all(
            database.master_secret_arn,
            cache.auth_secret_arn,
            queue.password_secret_arn if queue is not None else "",
            canary.token_secret_arn,
        ).apply(
            lambda arns: {
                "DB_PASSWORD": arns[0],
                "REDIS_PASSWORD": arns[1],
                **({"QUEUE_PASSWORD": arns[2]} if arns[2] else {}),
                "AUDIT_TOKEN": arns[3],
            }
        ),
        package=app.package,
        image_id=app.ami,
        user_data=app.user_data,
        peak_windows=[
            PeakCapacity(o.name, o.prewarm_utc, o.end_utc, o.app_min_capacity)
            for o in occurrences
            if o.app_min_capacity
        ],
        now=now,
        tags=tags,
    ),
)
backoffice = None
if qt is not None and queue is not None:
    limits = _queue_limits(qt)
    assert chain.worker_sg_id and chain.backoffice_db_sg_id and chain.backoffice_alb_sg_id
    backoffice = BackOffice(
        "backoffice",
        BackOfficeArgs(
            stack=stack,
            vpc_id=network.vpc_id,
            availability_zones=azs,
            app_subnet_ids=network.app_subnet_ids,
            data_subnet_ids=network.data_subnet_ids,
            worker_sg_id=chain.worker_sg_id,
            db_sg_id=chain.backoffice_db_sg_id,
            alb_sg_id=chain.backoffice_alb_sg_id,
            region=topology.region,
            broker_name=queue.broker_name,
            queue=qt.queue_name,
            settings=queue.amqp_endpoint.apply(
                lambda endpoint: {
                    **_queue_settings(endpoint),
                    **limits,
                    "STACK": stack,
                    "CLOUDWATCH_REGION": topology.region,
                }
            ),
            queue_secret_arn=queue.password_secret_arn,
            instance_type=qt.consumer_instance_type,
            min_size=qt.consumer_min_size,
            max_size=qt.consumer_max_size,
            backlog_per_worker=qt.backlog_per_worker,
            db_instance_class=qt.backoffice_db_instance_class,
            db_storage_gb=qt.backoffice_db_storage_gb,
            db_engine_version=db.engine_version,
            package=app.package,
            protected=topology.protected,
            tags=tags,
        ),
    )
bk = topology.backup
backups = Backup(
    "backup",
    BackupArgs(
        vault_name=f"peakready-{stack}",
        role_name=f"peakready-{stack}-backup",
        full_schedule=bk.full_schedule,
        incremental_schedule=bk.incremental_schedule,
        retention_days=bk.retention_days,
        copy_region=bk.copy_region,
        protected=topology.protected,
        tags=tags,
    ),
)
# The AWS drills find these roles by name: peakready-<stack>-fis, peakready-<stack>-backup.
ChaosAccess("chaos", ChaosAccessArgs(role_name=f"peakready-{stack}-fis", stack=stack, tags=tags))
Alarms(
    "alarms",
    AlarmsArgs(
        stack=stack,
        alerts=alerts.catalogue(topology),
        alb_arn_suffix=entry.arn_suffix,
        target_group_arn_suffix=entry.target_group_arn_suffix,
        db_primary=database.primary_identifier,
        db_replicas=database.replica_identifiers,
        db_is_cluster=db.deployment is DatabaseDeployment.MULTI_AZ_CLUSTER,
        cache_members=cache.member_ids,
        search_domain=search.domain_name,
        account_id=account_id,
        region=topology.region,
        email=topology.alarms.email,
        queue_broker=queue.broker_name if queue is not None else None,
        queue_name=qt.queue_name if qt is not None else None,
        canary_name=canary.name,
        tags=tags,
    ),
)

# ----------------------------------------------------------------- outputs (DESIGN §3)
pulumi.export("stack", stack)
pulumi.export("target", "aws")
pulumi.export("availability_zones", azs)
pulumi.export("endpoint", entry.endpoint)
pulumi.export("app_group", app_tier.group_name)
pulumi.export("db_primary", database.primary_identifier)
pulumi.export("db_replicas", database.replica_identifiers)
pulumi.export("cache_group", cache.group_id)
pulumi.export("search_domain", search.domain_name)
pulumi.export("backup_vault", backups.vault_name)
if queue is not None and backoffice is not None:
    pulumi.export("queue_broker", queue.broker_id)
    pulumi.export("backoffice_group", backoffice.group_name)
    pulumi.export("backoffice_endpoint", backoffice.endpoint)
