"""The one topology model: everything a stack declares under the ``peakready:`` namespace.

The same :class:`Topology` is built inside the Pulumi program (from ``pulumi.Config``)
and outside it (straight from ``stacks/Pulumi.<stack>.yaml``) through
:func:`Topology.from_config`, so the AWS program, the lab and the offline checks can
never disagree about a stack's shape.

Over 500 lines: it is the one validated model of the stack file, every tier's settings
beside the cross-tier checks that need them all; the model is the contract (README's
settings reference is generated from it).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from peakready.cron import Cron
from peakready.errors import ConfigError
from peakready.stackfile import read_yaml

NAMESPACE = "peakready"

#: The scenarios of DESIGN §6, in the order a drill runs them.
Scenario = Literal[
    "app-instance-loss",
    "az-power-loss",
    "db-primary-loss",
    "cache-primary-loss",
    "search-node-loss",
    "degraded-dependencies",
    "backup-restore",
    "peak-surge",
    "flash-sale",
    "az-loss-at-peak",
    "backoffice-outage",
    "broker-node-loss",
]
SCENARIOS: tuple[str, ...] = get_args(Scenario)
#: The scenarios of the order pipeline: only a stack with a ``queue`` tier has them.
PIPELINE_SCENARIOS: tuple[str, ...] = ("backoffice-outage", "broker-node-loss")

#: The stack outputs of DESIGN §3: what both the AWS stack and the lab expose, and all a
#: drill reads.
OUTPUT_KEYS: tuple[str, ...] = (
    "stack",
    "target",
    "availability_zones",
    "endpoint",
    "app_group",
    "db_primary",
    "db_replicas",
    "cache_group",
    "search_domain",
    "backup_vault",
)
#: The outputs a stack with a queue tier adds (DESIGN §3).
QUEUE_OUTPUT_KEYS: tuple[str, ...] = ("queue_broker", "backoffice_group", "backoffice_endpoint")

#: Repository root (the folder holding ``Pulumi.yaml`` and ``stacks/``).
REPO_ROOT = Path(__file__).resolve().parent.parent


def pinned_now() -> datetime | None:
    """``PEAKREADY_NOW`` (ISO 8601, with an offset or UTC) pins "now" for reproducible
    previews of the pre-warm schedule; None when unset."""
    text = os.environ.get("PEAKREADY_NOW")
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"PEAKREADY_NOW={text!r}: expected an ISO 8601 time such as 2026-11-11T00:00+08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


#: A stack name, as Pulumi allows it: letters, digits, ``-``, ``_``, ``.``; no path.
_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_stack_name(stack: str) -> str:
    """``stack`` when it is a stack name; ``ConfigError`` (one line) when it is not."""
    if not isinstance(stack, str) or not _STACK_NAME.fullmatch(stack) or ".." in stack:
        raise ConfigError(
            f"stack name {stack!r}: expected a name such as dev, staging or prod "
            "(letters, digits, - _ .; at most 64)"
        )
    return stack


def stacks_dir() -> Path:
    """Where stack files live; ``PEAKREADY_STACKS_DIR`` overrides it (tests, other repos)."""
    return Path(os.environ.get("PEAKREADY_STACKS_DIR", REPO_ROOT / "stacks"))


#: Every number has a sane upper bound, and no float may be inf or nan (_Model's
#: config): a forecast of 1e308 requests/s is a typo, not a peak.
PositiveInt = Annotated[int, Field(gt=0, le=10**9)]
NonNegInt = Annotated[int, Field(ge=0, le=10**9)]
PositiveFloat = Annotated[float, Field(gt=0, le=1e9)]
Fraction = Annotated[float, Field(ge=0, le=1)]
#: Longest string setting (EC2 user data is limited to 16 KiB).
MAX_STRING = 16384


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        allow_inf_nan=False,
        str_max_length=MAX_STRING,
    )


# --------------------------------------------------------------------------- time windows


class TimeWindow(_Model):
    """A span of wall-clock time in a named time zone (``start`` < ``end``)."""

    start: datetime = Field(description="ISO 8601 local time, e.g. 2026-11-27T00:00")
    end: datetime = Field(description="ISO 8601 local time; must be after start")
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Asia/Shanghai")
    recurs: Literal["yearly", "black-friday"] | None = Field(
        default=None,
        description="repeat every year: on the same date (yearly), or as far from that "
        "year's Black Friday (the day after November's 4th Thursday) as start is from its own",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"got {value!r}, expected an IANA time zone name such as Europe/Berlin"
            ) from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end_utc <= self.start_utc:
            raise ValueError(
                f"end {self.end.isoformat()} must be after start {self.start.isoformat()}"
            )
        return self

    def mixed_zones(self) -> str | None:
        """Which of start/end carries a UTC offset although ``timezone`` is given too
        (legal: the offset wins for it, but rarely what was meant); None when neither."""
        if "timezone" not in self.model_fields_set:
            return None
        ends = [n for n, m in (("start", self.start), ("end", self.end)) if m.tzinfo is not None]
        return " and ".join(ends) or None

    def _aware(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self.timezone))
        return moment.astimezone(ZoneInfo("UTC"))

    @property
    def start_utc(self) -> datetime:
        return self._aware(self.start)

    @property
    def end_utc(self) -> datetime:
        return self._aware(self.end)

    def contains(self, moment: datetime) -> bool:
        """Whether an aware ``moment`` falls inside the window (its occurrence then)."""
        window = self.occurrence(moment)
        return window.start_utc <= moment < window.end_utc

    def occurrence(self, moment: datetime) -> Self:
        """The window as it falls around an aware ``moment``: for a recurring window the
        first occurrence that has not ended by then (the one under way, else the next);
        a window that does not recur is itself."""
        if self.recurs is None:
            return self
        # Eight years ahead: even 29 February (no leap day in 2100) comes round by then.
        for year in range(moment.year - 1, moment.year + 9):
            shifted = self._in_year(year)
            if shifted is not None and shifted.end_utc > moment:
                return shifted
        raise AssertionError("a recurring window occurs within eight years")

    def _in_year(self, year: int) -> Self | None:
        """This window moved to ``year`` (None: its date does not exist then, 29 Feb)."""
        if self.recurs == "black-friday":
            delta = timedelta(days=(black_friday(year) - black_friday(self.start.year)).days)
            start, end = self.start + delta, self.end + delta
        else:
            try:
                start = self.start.replace(year=year)
                end = self.end.replace(year=year + self.end.year - self.start.year)
            except ValueError:
                return None
        return self.model_copy(update={"start": start, "end": end, "recurs": None})


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November of ``year``."""
    first = date(year, 11, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(days=22)


class PeakWindow(TimeWindow):
    """A known sales peak: its forecast and the app capacity scheduled for it."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="window name, e.g. singles-day (at most 63 characters)",
    )
    requests_per_s: PositiveFloat = Field(description="forecast requests/s during the window")
    orders_per_s: PositiveFloat | None = Field(
        default=None,
        description="forecast orders/s during the window (default: the stack forecast)",
    )
    app_min_capacity: PositiveInt | None = Field(
        default=None,
        description="app instances scheduled as the minimum during the window (pre-warm)",
    )
    prewarm_minutes: Annotated[int, Field(ge=0, le=7 * 24 * 60)] = Field(
        default=60, description="how long before start the minimum is raised (at most a week)"
    )

    @property
    def prewarm_utc(self) -> datetime:
        return self.start_utc - timedelta(minutes=self.prewarm_minutes)


class FreezeWindow(TimeWindow):
    """A change freeze: destructive drills are refused inside it."""

    reason: str = Field(default="peak freeze", description="shown when a drill is refused")


# --------------------------------------------------------------------------- tiers


class Forecast(_Model):
    """The forecast peak and how traffic splits over the tiers."""

    requests_per_s: PositiveFloat = Field(description="peak requests/s at the load balancer")
    orders_per_s: PositiveFloat = Field(description="peak orders/s (writes on the primary)")
    headroom: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.3, description="extra capacity over the forecast, as a fraction (0.3 = 30 %)"
    )
    search_share: Fraction = Field(
        default=0.2, description="fraction of requests that are searches"
    )
    db_read_share: Fraction = Field(
        default=0.1,
        description="fraction of requests whose reads reach the database (cache misses)",
    )


class Network(_Model):
    """VPC, subnets per AZ, NAT gateways, flow logs."""

    cidr: str = Field(
        default="10.40.0.0/16",
        pattern=r"^\d+\.\d+\.\d+\.\d+/(1[6-9]|2[0-4])$",
        description="VPC address range, /16 to /24",
    )
    single_nat_gateway: bool = Field(
        default=False, description="one NAT gateway for all AZs (cheaper; dev only)"
    )
    flow_logs_retention_days: PositiveInt = Field(default=30, description="VPC flow log retention")


class LoadBalancer(_Model):
    """The public entry: an ALB in every AZ."""

    certificate_arn: str | None = Field(
        default=None, description="ACM certificate; HTTPS listener with HTTP redirect when set"
    )
    health_check_path: str = Field(
        default="/readyz", pattern=r"^/", description="target group health check (app readiness)"
    )
    health_check_interval_s: Annotated[int, Field(ge=5, le=300)] = Field(
        default=5, description="seconds between health checks"
    )
    deregistration_delay_s: Annotated[int, Field(ge=0, le=3600)] = Field(
        default=10, description="connection draining when a target leaves"
    )
    idle_timeout_s: Annotated[int, Field(ge=1, le=4000)] = Field(
        default=60, description="ALB idle timeout"
    )
    rate_limit_per_ip: Annotated[int, Field(ge=10, le=2_000_000_000)] | None = Field(
        default=6000,
        description="WAF rate-based rule on the ALB: requests per client IP per 5 minutes, "
        "past which it answers 429 (null: no WAF; a protected stack must have one)",
    )


class App(_Model):
    """The stateless storefront tier: an Auto Scaling group over every AZ."""

    instance_type: str = Field(default="t3.small", min_length=1, description="EC2 instance type")
    requests_per_instance: PositiveFloat | None = Field(
        default=None,
        description="requests/s one instance serves within the latency objective "
        "(default: the figure measured by `make bench`)",
    )
    min_size: NonNegInt = Field(default=2, description="Auto Scaling group minimum")
    max_size: PositiveInt = Field(default=6, description="Auto Scaling group maximum")
    desired_size: NonNegInt | None = Field(default=None, description="initial desired capacity")
    target_requests_per_target: PositiveInt = Field(
        default=500, description="target tracking: ALB requests per target per minute"
    )
    instance_warmup_s: Annotated[int, Field(ge=0, le=3600)] = Field(
        default=60,
        description="seconds a new instance's metrics stay out of the group's (ASG warm-up)",
    )
    scale_in_after_s: Annotated[int, Field(ge=60, le=86400)] = Field(
        default=900,
        description="seconds the load must stay below the target before one instance is "
        "removed (AWS target tracking: 15 one-minute datapoints)",
    )
    ami: str | None = Field(default=None, description="AMI id; default: latest Debian 12")
    package: str = Field(
        default="peakready",
        min_length=1,
        description="pip requirement the default user data installs (a wheel URL, a git URL)",
    )
    user_data: str | None = Field(
        default=None, description="user data replacing the storefront install script"
    )

    @model_validator(mode="after")
    def _sizes(self) -> App:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size {self.min_size} must not exceed max_size {self.max_size}")
        if self.desired_size is not None and not (
            self.min_size <= self.desired_size <= self.max_size
        ):
            raise ValueError(f"desired_size {self.desired_size} must lie in [min_size, max_size]")
        return self


class DatabaseDeployment(StrEnum):
    MULTI_AZ_INSTANCE = "multi-az-instance"
    MULTI_AZ_CLUSTER = "multi-az-cluster"


class Database(_Model):
    """PostgreSQL: a Multi-AZ primary with read replicas, or a Multi-AZ DB cluster."""

    engine_version: str = Field(
        default="15", pattern=r"^\d+(\.\d+)?$", description="PostgreSQL major[.minor]"
    )
    instance_class: str = Field(default="db.t4g.medium", pattern=r"^db\.", description="RDS class")
    deployment: DatabaseDeployment = Field(
        default=DatabaseDeployment.MULTI_AZ_INSTANCE,
        description="Multi-AZ instance (+ replicas) or Multi-AZ DB cluster",
    )
    replicas: Annotated[int, Field(ge=0, le=15)] = Field(
        default=1, description="read replicas, placed in the other AZs (RDS allows 15)"
    )
    storage_gb: Annotated[int, Field(ge=20, le=65536)] = Field(
        default=50, description="allocated storage (gp3)"
    )
    backup_retention_days: Annotated[int, Field(ge=1, le=35)] = Field(
        default=7, description="automated backups and PITR window"
    )
    primary_orders_per_s: PositiveFloat = Field(
        default=800, description="orders/s the primary commits within the latency objective"
    )
    replica_reads_per_s: PositiveFloat = Field(
        default=2000, description="reads/s one replica (or the standby cluster reader) serves"
    )


class Cache(_Model):
    """Redis: an ElastiCache replication group, Multi-AZ with automatic failover."""

    node_type: str = Field(
        default="cache.t4g.small", pattern=r"^cache\.", description="ElastiCache node type"
    )
    replicas: Annotated[int, Field(ge=0, le=5)] = Field(
        default=2, description="replicas per shard, spread over the AZs (ElastiCache allows 5)"
    )
    snapshot_retention_days: Annotated[int, Field(ge=0, le=35)] = Field(
        default=1, description="daily Redis snapshots kept"
    )
    node_ops_per_s: PositiveFloat = Field(default=20000, description="reads/s one node serves")


class Search(_Model):
    """OpenSearch with zone awareness and dedicated masters."""

    instance_type: str = Field(
        default="t3.small.search", pattern=r"\.search$", description="OpenSearch data node type"
    )
    instance_count: PositiveInt = Field(default=3, description="data nodes, spread over the AZs")
    dedicated_master_type: str | None = Field(
        default="t3.small.search", pattern=r"\.search$", description="dedicated master node type"
    )
    dedicated_master_count: Literal[0, 3, 5] = Field(default=3, description="dedicated masters")
    volume_gb: Annotated[int, Field(ge=10, le=3072)] = Field(
        default=20, description="EBS volume per data node"
    )
    node_queries_per_s: PositiveFloat = Field(default=200, description="searches/s one node serves")


class Backup(_Model):
    """AWS Backup plan (lab: pgBackRest cadence) and the off-site copy."""

    full_schedule: str = Field(
        default="cron(0 3 ? * SUN *)", description="full backups (AWS cron); lab: pgBackRest full"
    )
    incremental_schedule: str = Field(
        default="cron(0 3 ? * MON-SAT *)", description="daily backups between fulls"
    )
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 35
    copy_region: str | None = Field(
        default=None, description="second region for the off-site copy (3-2-1)"
    )

    @field_validator("full_schedule", "incremental_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            Cron.parse(value, source="schedule")
        except ConfigError as exc:
            raise ValueError(exc.lines[0].removeprefix("schedule: ")) from None
        return value


class QueueDeployment(StrEnum):
    CLUSTER_MULTI_AZ = "cluster-multi-az"
    SINGLE_INSTANCE = "single-instance"


class Queue(_Model):
    """The order pipeline to the back office: a RabbitMQ broker (Amazon MQ for RabbitMQ;
    lab: a node per AZ) holding one quorum queue of orders, which the storefront's relay
    fills from its outbox and the back-office workers drain."""

    engine: Literal["rabbitmq"] = Field(default="rabbitmq", description="broker engine")
    engine_version: str = Field(
        default="3.13", pattern=r"^\d+\.\d+(\.\d+)?$", description="RabbitMQ version"
    )
    instance_type: str = Field(
        default="mq.m5.large", pattern=r"^mq\.", description="Amazon MQ broker instance type"
    )
    deployment: QueueDeployment = Field(
        default=QueueDeployment.CLUSTER_MULTI_AZ,
        description="three brokers over the AZs (cluster-multi-az), or one (single-instance; "
        "the policy pack refuses it)",
    )
    queue_name: str = Field(
        default="orders",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$",
        description="the quorum queue orders flow through (its dead letters: <name>.dead)",
    )
    max_length: PositiveInt = Field(
        default=1_000_000,
        description="messages the queue holds before it refuses publishes (x-max-length, "
        "reject-publish: the outbox keeps the rest)",
    )
    message_ttl_s: Annotated[int, Field(ge=60, le=30 * 86400)] = Field(
        default=7 * 86400,
        description="seconds a message may wait before it is dead-lettered (at most 30 days)",
    )
    dead_letter: bool = Field(
        default=True, description="poison and expired messages go to <queue_name>.dead"
    )
    consumer_instance_type: str = Field(
        default="t3.small", min_length=1, description="EC2 type of the back-office workers"
    )
    consumer_min_size: NonNegInt = Field(default=2, description="back-office worker minimum")
    consumer_max_size: PositiveInt = Field(default=6, description="back-office worker maximum")
    consumer_orders_per_s: PositiveFloat = Field(
        default=200, description="orders/s one back-office worker applies"
    )
    backoffice_db_instance_class: str = Field(
        default="db.t4g.medium", pattern=r"^db\.", description="the back office's own RDS class"
    )
    backoffice_db_storage_gb: Annotated[int, Field(ge=20, le=65536)] = Field(
        default=50, description="the back office's database storage (gp3)"
    )
    max_backlog_age_s: PositiveFloat = Field(
        default=60, description="objective: the oldest waiting order is at most this old"
    )
    drain_ratio: Annotated[float, Field(ge=1, le=1000)] = Field(
        default=5, description="objective: a backlog drains at this many times the peak order rate"
    )

    @model_validator(mode="after")
    def _sizes(self) -> Queue:
        if self.consumer_min_size > self.consumer_max_size:
            raise ValueError(
                f"consumer_min_size {self.consumer_min_size} must not exceed "
                f"consumer_max_size {self.consumer_max_size}"
            )
        return self

    @property
    def dead_letter_queue(self) -> str | None:
        return f"{self.queue_name}.dead" if self.dead_letter else None

    @property
    def backlog_per_worker(self) -> int:
        """The worker group's scaling target: orders waiting per in-service worker, what
        one drains in half the backlog-age objective."""
        return max(1, round(self.consumer_orders_per_s * self.max_backlog_age_s / 2))


class Alarms(_Model):
    """The alerts that matter at peak (``peakready.monitoring.alerts``): CloudWatch
    alarms to an SNS topic on AWS, Prometheus rules to Alertmanager in the lab."""

    email: str | None = Field(default=None, description="SNS e-mail subscription for alarms")
    replica_lag_s: PositiveFloat = Field(default=30, description="alarm above this replica lag")
    cpu_percent: Annotated[float, Field(gt=0, le=100)] = Field(
        default=80, description="alarm above this CPU use"
    )
    free_storage_gb: PositiveFloat = Field(default=5, description="alarm below this free storage")
    lb_5xx_per_s: Annotated[float, Field(ge=0)] = Field(
        default=0.2, description="alarm above this many 5xx answers per second"
    )
    cache_lag_s: PositiveFloat = Field(default=5, description="alarm above this cache replica lag")
    order_error_ratio: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.05, description="alarm above this share of orders answered 5xx"
    )
    order_rate_drop_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        default=0.3,
        description="alarm when orders per minute fall below this fraction of the last "
        "minutes' while traffic holds",
    )
    mttd_s: PositiveFloat = Field(
        default=15, description="a drill's expected alert fires within this after its fault"
    )
    resolve_s: PositiveFloat = Field(
        default=60, description="and resolves within this after the drill's recovery"
    )


class Slo(_Model):
    """Service level objectives at the peak: what the peak rehearsals judge."""

    order_p99_ms: Annotated[float, Field(gt=0, le=60000)] = Field(
        default=250, description="p99 latency of POST /orders"
    )
    browse_p99_ms: Annotated[float, Field(gt=0, le=60000)] = Field(
        default=500, description="p99 latency of product reads and searches that are served"
    )
    min_order_goodput: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.95, description="acknowledged ÷ offered orders, at least"
    )


class Objective(_Model):
    """A resiliency objective, like AWS Resilience Hub's policy."""

    rto_s: PositiveFloat = Field(description="recovery time objective, seconds")
    rpo_s: Annotated[float, Field(ge=0)] = Field(
        default=0, description="recovery point objective, seconds"
    )
    max_failed_requests: NonNegInt | None = Field(
        default=None, description="failed requests tolerated during the scenario"
    )


def _default_policy() -> dict[str, Objective]:
    return {
        "app-instance-loss": Objective(rto_s=10, rpo_s=0, max_failed_requests=0),
        "az-power-loss": Objective(rto_s=30, rpo_s=0),
        "db-primary-loss": Objective(rto_s=25, rpo_s=0),
        "cache-primary-loss": Objective(rto_s=5, rpo_s=0),
        "search-node-loss": Objective(rto_s=5, rpo_s=0),
        "degraded-dependencies": Objective(rto_s=5, rpo_s=0),
        "backup-restore": Objective(rto_s=600, rpo_s=300),
        # Peak rehearsals: RTO is the time order goodput may stay below the slo.
        "peak-surge": Objective(rto_s=30, rpo_s=0),
        "flash-sale": Objective(rto_s=30, rpo_s=0),
        "az-loss-at-peak": Objective(rto_s=30, rpo_s=0),
        # The order pipeline: RTO is the order path's (it must not notice at all).
        "backoffice-outage": Objective(rto_s=5, rpo_s=0, max_failed_requests=0),
        "broker-node-loss": Objective(rto_s=5, rpo_s=0, max_failed_requests=0),
    }


class Lab(_Model):
    """Settings of the local lab (DESIGN §5). Binaries fall back to PATH."""

    port_base: Annotated[int, Field(ge=1024, le=32000)] = Field(
        default=20000, description="first port of the lab's block (ports stay below 32768)"
    )
    app_instances: Annotated[int, Field(ge=1, le=12)] = Field(
        default=3, description="storefront instances at start: the lab group's minimum"
    )
    app_max_instances: Annotated[int, Field(ge=1, le=12)] | None = Field(
        default=None,
        description="the lab group's maximum (default: app.max_size scaled by "
        "app_instances ÷ app.min_size)",
    )
    app_cpu_quota: Annotated[float, Field(ge=0.05, le=4)] = Field(
        default=0.2,
        description="CPU cores each storefront instance may use (cgroup cpu quota): the "
        "lab's instance type",
    )
    autoscaling: bool = Field(
        default=True, description="scale the lab's app group on requests per target"
    )
    overload_protection: bool = Field(
        default=True,
        description="HAProxy priority, shedding and rate limits, and the storefront's "
        "shedding budget (off: to rehearse a stack without them)",
    )
    time_scale: Annotated[float, Field(ge=1, le=600)] = Field(
        default=30,
        description="the lab's scaling timers (warm-up, scale-in) run this many times "
        "faster than the stack's",
    )
    binaries: dict[
        Literal[
            "patroni",
            "postgres",
            "etcd",
            "redis-server",
            "redis-sentinel",
            "haproxy",
            "searchd",
            "pgbackrest",
            "rabbitmq-server",
            "rabbitmqctl",
            "epmd",
        ],
        str,
    ] = Field(default_factory=dict, description="override a server binary by path")
    products: Annotated[int, Field(ge=1, le=100000)] = Field(
        default=200, description="products in the seed catalog"
    )
    initial_stock: NonNegInt = Field(default=100000, description="stock of each seed product")

    @model_validator(mode="after")
    def _group_sizes(self) -> Lab:
        if self.app_max_instances is not None and self.app_max_instances < self.app_instances:
            raise ValueError(
                f"app_max_instances {self.app_max_instances} must not be below "
                f"app_instances {self.app_instances}"
            )
        return self


# --------------------------------------------------------------------------- the topology

_FIELD_KEYS = (
    "region",
    "availability_zones",
    "protected",
    "forecast",
    "peak_windows",
    "freeze_windows",
    "network",
    "load_balancer",
    "app",
    "database",
    "cache",
    "search",
    "backup",
    "queue",
    "alarms",
    "slo",
    "resiliency",
    "lab",
)


class Topology(_Model):
    """A stack's whole shape. Build with :meth:`load` or :meth:`from_config`."""

    stack: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="AWS region")
    availability_zones: int | list[str] = Field(
        default=3, description="how many AZs (2 to 6), or their names"
    )
    protected: bool = Field(
        default=False, description="refuse destructive drills unless --allow-protected"
    )
    forecast: Forecast = Field(description="the peak the stack must carry")
    peak_windows: list[PeakWindow] = Field(
        default_factory=list, description="known peaks: forecast and scheduled app capacity"
    )
    freeze_windows: list[FreezeWindow] = Field(
        default_factory=list, description="change freezes: destructive drills are refused"
    )
    network: Network = Field(default_factory=Network)
    load_balancer: LoadBalancer = Field(default_factory=LoadBalancer)
    app: App = Field(default_factory=App)
    database: Database = Field(default_factory=Database)
    cache: Cache = Field(default_factory=Cache)
    search: Search = Field(default_factory=Search)
    backup: Backup = Field(default_factory=Backup)
    queue: Queue | None = Field(
        default=None, description="the order pipeline to the back office (none: no back office)"
    )
    alarms: Alarms = Field(default_factory=Alarms)
    slo: Slo = Field(default_factory=Slo)
    resiliency: dict[Scenario, Objective] = Field(
        default_factory=dict, description="RTO/RPO per scenario (DESIGN §6)"
    )
    lab: Lab = Field(default_factory=Lab)

    @field_validator("availability_zones", mode="before")
    @classmethod
    def _az_count_or_names(cls, value: Any) -> int | list[str]:
        expected = "expected a count from 2 to 6, or a list of 2 to 6 distinct AZ names"
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 2 <= value <= 6:
                raise ValueError(f"got {value}, {expected}")
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            if not 2 <= len(value) <= 6 or len(set(value)) != len(value):
                raise ValueError(f"got {len(value)} names {value}, {expected}")
            for name in value:
                if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d[a-z]", name):
                    raise ValueError(f"got {name!r}, expected an AZ name such as eu-central-1a")
            return value
        raise ValueError(f"got {value!r}, {expected}")

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        if isinstance(self.availability_zones, list):
            for az in self.availability_zones:
                if not az.startswith(self.region):
                    raise ValueError(
                        f"{NAMESPACE}:availability_zones: {az} is not in region {self.region}"
                    )
        names = [w.name for w in self.peak_windows]
        if len(set(names)) != len(names):
            raise ValueError(f"{NAMESPACE}:peak_windows: names must be distinct, got {names}")
        for window in self.peak_windows:
            if window.app_min_capacity and window.app_min_capacity > self.app.max_size:
                raise ValueError(
                    f"{NAMESPACE}:peak_windows: {window.name}: app_min_capacity "
                    f"{window.app_min_capacity} exceeds app.max_size {self.app.max_size}"
                )
        by_start = sorted(self.peak_windows, key=lambda w: w.start_utc)
        for earlier, later in itertools.pairwise(by_start):
            if later.start_utc < earlier.end_utc:
                raise ValueError(
                    f"{NAMESPACE}:peak_windows: {earlier.name} and {later.name} overlap "
                    f"({later.name} starts {later.start_utc.isoformat()}, before {earlier.name} "
                    f"ends {earlier.end_utc.isoformat()}); merge them or move one"
                )
        return self

    def warnings(self) -> list[str]:
        """What is legal but suspicious: one line each, printed before a command runs."""
        found = []
        n = self.az_count
        if self.database.replicas > n - 1:
            found.append(
                f"{NAMESPACE}:database.replicas: {self.database.replicas} replicas over {n} AZs: "
                f"the primary's AZ holds none, so {self.database.replicas - (n - 1)} share an AZ "
                "with another replica"
            )
        windows: list[tuple[str, int, TimeWindow]]
        windows = [("peak_windows", i, w) for i, w in enumerate(self.peak_windows)]
        windows += [("freeze_windows", i, w) for i, w in enumerate(self.freeze_windows)]
        for field, i, window in windows:
            mixed = window.mixed_zones()
            if mixed:
                found.append(
                    f"{NAMESPACE}:{field}[{i}]: {mixed} carries a UTC offset and timezone "
                    f"{window.timezone} is given too: the offset wins; give one of them"
                )
        if self.cache.replicas > n - 1:
            found.append(
                f"{NAMESPACE}:cache.replicas: {self.cache.replicas} replicas over {n} AZs: "
                f"{self.cache.replicas - (n - 1)} share an AZ with another node"
            )
        queue = self.queue
        if queue is not None:
            drain = queue.consumer_max_size * queue.consumer_orders_per_s
            wanted = queue.drain_ratio * self.peak_orders_per_s
            if drain < wanted:
                found.append(
                    f"{NAMESPACE}:queue: the back office drains at most {drain:g} orders/s "
                    f"(consumer_max_size x consumer_orders_per_s), below drain_ratio x the peak "
                    f"order rate ({wanted:g})"
                )
        return found

    # ----------------------------------------------------------------- derived facts

    @property
    def az_names(self) -> list[str]:
        """AZ names in use: given, or the region's first N (``eu-central-1a`` …)."""
        if isinstance(self.availability_zones, list):
            return list(self.availability_zones)
        return [f"{self.region}{chr(ord('a') + i)}" for i in range(self.availability_zones)]

    @property
    def az_count(self) -> int:
        return len(self.az_names)

    @property
    def peak_orders_per_s(self) -> float:
        """The highest order rate the stack expects: the forecast's, or a window's."""
        windows = [w.orders_per_s for w in self.peak_windows if w.orders_per_s]
        return max([self.forecast.orders_per_s, *windows])

    def objective(self, scenario: str) -> Objective:
        """The resiliency objective for ``scenario``: the stack's, else the default."""
        if scenario not in SCENARIOS:
            raise KeyError(scenario)
        return self.resiliency.get(scenario) or _default_policy()[scenario]  # type: ignore[call-overload]

    def freeze_at(self, moment: datetime) -> FreezeWindow | None:
        """The freeze window covering ``moment`` (aware), if any (its occurrence then)."""
        return next((w.occurrence(moment) for w in self.freeze_windows if w.contains(moment)), None)

    # ----------------------------------------------------------------- loading

    @classmethod
    def from_config(cls, stack: str, config: dict[str, Any], source: str) -> Topology:
        """Build from the ``peakready:`` keys of a stack's config.

        ``config`` maps keys with or without the ``peakready:`` prefix to values;
        keys of other namespaces are ignored, but ``aws:region`` must agree with
        ``peakready:region`` (the provider would build in one region, the checks would
        reason about the other). ``source`` names the file or origin in error lines.
        """
        raw: dict[str, Any] = {"stack": stack}
        unknown: list[str] = []
        for key, value in config.items():
            namespace, _, name = key.rpartition(":")
            if namespace and namespace != NAMESPACE:
                continue
            if name not in _FIELD_KEYS:
                unknown.append(name)
                continue
            raw[name] = value
        lines = [
            f"{source}: {NAMESPACE}:{name}: unknown key, expected one of: {', '.join(_FIELD_KEYS)}"
            for name in unknown
        ]
        try:
            topology = cls.model_validate(raw)
        except ValidationError as exc:
            lines.extend(_error_lines(exc, source))
            raise ConfigError(*lines) from None
        aws_region = config.get("aws:region")
        if aws_region is not None and aws_region != topology.region:
            lines.append(
                f"{source}: aws:region {aws_region} differs from {NAMESPACE}:region "
                f"{topology.region}: expected the same region in both"
            )
        if lines:
            raise ConfigError(*lines)
        return topology

    @classmethod
    def from_stack_file(cls, path: Path) -> Topology:
        """Load ``stacks/Pulumi.<stack>.yaml`` without the Pulumi engine."""
        name = path.name
        if not (name.startswith("Pulumi.") and name.endswith((".yaml", ".yml"))):
            raise ConfigError(f"{path}: expected a stack file named Pulumi.<stack>.yaml")
        stack = name[len("Pulumi.") :].rsplit(".", 1)[0]
        document = read_yaml(path)
        if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
            raise ConfigError(f"{path}: expected a mapping with a 'config:' mapping")
        return cls.from_config(stack, document.get("config") or {}, str(path))

    @classmethod
    def load(cls, stack: str) -> Topology:
        """Load a stack by name from :func:`stacks_dir`."""
        check_stack_name(stack)
        path = stacks_dir() / f"Pulumi.{stack}.yaml"
        if not path.exists():
            known = sorted(p.name[7:-5] for p in stacks_dir().glob("Pulumi.*.yaml"))
            raise ConfigError(
                f"unknown stack {stack!r}: no {path}; known stacks: {', '.join(known) or 'none'}"
            )
        return cls.from_stack_file(path)

    @classmethod
    def from_pulumi_config(cls) -> Topology:
        """Inside the Pulumi program: the same model, from the engine's config."""
        # Imported here: only inside the Pulumi program; the CLI reads stack files without the SDK.
        import pulumi
        from pulumi.runtime.config import CONFIG, get_config_env

        # The language host hands config over with set_all_config (newer engines) or in
        # PULUMI_CONFIG (older engines and mocks); read both, the runtime's first.
        config: dict[str, Any] = {}
        for key, value in {**get_config_env(), **CONFIG.get()}.items():
            try:
                config[key] = json.loads(value)
            except (TypeError, ValueError):
                config[key] = value
        return cls.from_config(pulumi.get_stack(), config, f"stack {pulumi.get_stack()}")


def _error_lines(exc: ValidationError, source: str) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        path = NAMESPACE + ":"
        for part in error["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part != "[key]":
                path += ("" if path.endswith(":") else ".") + str(part)
        expected = error["msg"]
        for prefix in ("Value error, ", "Input should be ", "Assertion failed, "):
            expected = expected.removeprefix(prefix)
        if error["type"] == "extra_forbidden":
            lines.append(f"{source}: {path}: unknown key")
            continue
        if error["type"] == "missing":
            lines.append(f"{source}: {path}: missing, expected a value")
            continue
        if error["type"] in ("value_error", "assertion_error"):
            where = "" if path.endswith(":") else f" {path}:"
            lines.append(f"{source}:{where} {expected}")
            continue
        value = error.get("input")
        shown = json.dumps(value, default=str) if not isinstance(value, dict) else "{…}"
        if len(shown) > 60:
            shown = shown[:57] + "…"
        lines.append(f"{source}: {path}: got {shown}, expected {expected}")
    return list(dict.fromkeys(lines))


def ceil_div(numerator: float, denominator: float) -> int:
    """Smallest integer ≥ numerator / denominator (for instance counts)."""
    return math.ceil(numerator / denominator - 1e-9)
