"""App tier: the storefront (or the back-office workers) on an Auto Scaling group over
every AZ's private subnet."""

from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime

import pulumi
import pulumi_aws.autoscaling as autoscaling
import pulumi_aws.ec2 as ec2
import pulumi_aws.iam as iam

from infra.security import APP_PORT
from infra.trust import service_trust_policy

#: Debian publishes its current images as public SSM parameters, one per region and
#: architecture, and launch templates resolve ``resolve:ssm:`` at launch time.
DEBIAN_IMAGE = "resolve:ssm:/aws/service/debian/release/bookworm/latest/{arch}"
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Service:
    """What an instance of the tier runs: its systemd unit, Python module, the prefix of
    its settings, and the CloudWatch namespace it may publish to."""

    name: str
    module: str
    env_prefix: str
    namespace: str


STOREFRONT = Service("storefront", "peakready.app", "PEAKREADY_APP_", "peakready/Storefront")
BACKOFFICE = Service(
    "backoffice", "peakready.backoffice", "PEAKREADY_BACKOFFICE_", "peakready/Backoffice"
)


@dataclass(frozen=True)
class QueueBacklog:
    """Scale on the queue's backlog per in-service instance (Amazon MQ's MessageCount)."""

    broker_name: pulumi.Input[str]
    queue: str
    per_instance: int


@dataclass(frozen=True)
class PeakCapacity:
    """Capacity scheduled for one peak window (all times aware, UTC)."""

    name: str
    prewarm_utc: datetime
    end_utc: datetime
    min_capacity: int


@dataclass(frozen=True)
class ScheduledAction:
    name: str
    start_time: str
    min_size: int
    max_size: int
    desired_capacity: int


def schedule(
    windows: list[PeakCapacity], base_min: int, max_size: int, now: datetime
) -> tuple[int, list[ScheduledAction]]:
    """Pre-warm and release actions for the windows still ahead, and the minimum for now.

    AWS refuses scheduled actions in the past: a window already over gets no action; a
    window whose pre-warm time has passed but which is not over raises the group's own
    minimum instead, and keeps only its release action.
    """
    current_min = base_min
    actions: list[ScheduledAction] = []
    for window in sorted(windows, key=lambda w: w.prewarm_utc):
        if window.end_utc <= now:
            continue
        if window.prewarm_utc <= now:
            current_min = max(current_min, window.min_capacity)
        else:
            actions.append(
                ScheduledAction(
                    name=f"{window.name}-prewarm",
                    start_time=window.prewarm_utc.strftime(UTC_FORMAT),
                    min_size=window.min_capacity,
                    max_size=max_size,
                    desired_capacity=window.min_capacity,
                )
            )
        # -1 leaves desired capacity to target tracking, which scales in gradually.
        actions.append(
            ScheduledAction(
                name=f"{window.name}-release",
                start_time=window.end_utc.strftime(UTC_FORMAT),
                min_size=base_min,
                max_size=max_size,
                desired_capacity=-1,
            )
        )
    return current_min, actions


def image_for(instance_type: str) -> str:
    """The Debian 12 image for the instance type's architecture (Graviton → arm64)."""
    family = instance_type.split(".", 1)[0]
    arch = "arm64" if re.fullmatch(r"[a-z]+\d+[a-z]*g[a-z]*", family) else "amd64"
    return DEBIAN_IMAGE.format(arch=arch)


def _env_quote(value: str) -> str:
    """A systemd EnvironmentFile value: double-quoted, backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_user_data(
    settings: dict[str, str],
    secret_arns: dict[str, str],
    package: str,
    region: str,
    service: Service = STOREFRONT,
) -> str:
    """Boot script: install peakready, fetch the service's secrets at start, run it under
    systemd.

    Secrets never appear in user data: the unit fetches them from Secrets Manager with
    the instance role into a 0600 file under /run before each start.
    """
    prefix, unit = service.env_prefix, service.name
    env_lines = "\n".join(
        f"{prefix}{key}={_env_quote(value)}" for key, value in sorted(settings.items())
    )
    secrets = json.dumps(secret_arns, sort_keys=True)
    return f"""#!/bin/bash
# peakready {unit} bootstrap (override with peakready:app.user_data)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3-venv python3-pip
python3 -m venv /opt/peakready
/opt/peakready/bin/pip install -q {shlex.quote(package)}
install -d -m 0755 /etc/peakready
cat > /etc/peakready/{unit}.env <<'ENV'
{env_lines}
ENV
cat > /etc/peakready/secrets.json <<'JSON'
{secrets}
JSON
cat > /usr/local/bin/peakready-env <<'PY'
#!/opt/peakready/bin/python
# Writes /run/peakready/secrets.env (0600): secrets from Secrets Manager, AZ and instance id.
import json, os, urllib.request
import boto3
def imds(path):
    token = urllib.request.urlopen(urllib.request.Request(
        "http://169.254.169.254/latest/api/token", method="PUT",
        headers={{"X-aws-ec2-metadata-token-ttl-seconds": "60"}}), timeout=2).read().decode()
    return urllib.request.urlopen(urllib.request.Request(
        "http://169.254.169.254/latest/meta-data/" + path,
        headers={{"X-aws-ec2-metadata-token": token}}), timeout=2).read().decode()
client = boto3.client("secretsmanager", region_name={region!r})
lines = ["{prefix}AZ=" + imds("placement/availability-zone"),
         "{prefix}INSTANCE_ID=" + imds("instance-id")]
for var, arn in json.load(open("/etc/peakready/secrets.json")).items():
    value = client.get_secret_value(SecretId=arn)["SecretString"]
    if value.startswith("{{"):
        value = json.loads(value)["password"]
    quoted = value.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"')
    lines.append(f'{prefix}{{var}}="{{quoted}}"')
os.makedirs("/run/peakready", mode=0o700, exist_ok=True)
fd = os.open("/run/peakready/secrets.env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, ("\\n".join(lines) + "\\n").encode())
os.close(fd)
PY
chmod 0755 /usr/local/bin/peakready-env
useradd --system --home /opt/peakready --shell /usr/sbin/nologin {unit} || true
cat > /etc/systemd/system/{unit}.service <<'UNIT'
[Unit]
Description=peakready {unit}
After=network-online.target
Wants=network-online.target
[Service]
User={unit}
EnvironmentFile=/etc/peakready/{unit}.env
EnvironmentFile=-/run/peakready/secrets.env
ExecStartPre=+/usr/local/bin/peakready-env
ExecStart=/opt/peakready/bin/python -m {service.module}
Restart=always
RestartSec=2
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now {unit}.service
"""


@dataclass
class AppTierArgs:
    group_name: str
    app_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    #: Target tracking: ALB requests per target (this label), or the queue's backlog.
    request_count_label: pulumi.Input[str] | None
    instance_type: str
    min_size: int
    max_size: int
    target_requests_per_target: int
    region: str
    settings: pulumi.Input[dict[str, str]]
    secret_arns: pulumi.Input[dict[str, str]]
    package: str = "peakready"
    instance_warmup_s: int = 60
    desired_size: int | None = None
    image_id: str | None = None
    user_data: str | None = None
    peak_windows: list[PeakCapacity] = field(default_factory=list)
    now: datetime | None = None
    service: Service = STOREFRONT
    backlog: QueueBacklog | None = None
    tags: dict[str, str] = field(default_factory=dict)


class AppTier(pulumi.ComponentResource):
    """Launch template (IMDSv2, encrypted volume, no public IP), ASG, scaling, pre-warm."""

    group_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AppTierArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:app_tier:AppTier", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        role = iam.Role(
            f"{name}-instance",
            assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        # Session Manager instead of SSH: no inbound port for operators either.
        iam.RolePolicyAttachment(
            f"{name}-ssm",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            opts=child,
        )
        iam.RolePolicy(
            f"{name}-secrets",
            role=role.id,
            policy=pulumi.Output.from_input(args.secret_arns).apply(
                lambda arns: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": sorted(arns.values()),
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        iam.RolePolicy(
            f"{name}-metrics",
            role=role.id,
            # The service's custom metrics, in its own namespace only.
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "cloudwatch:PutMetricData",
                            "Resource": "*",
                            "Condition": {
                                "StringEquals": {"cloudwatch:namespace": args.service.namespace}
                            },
                        }
                    ],
                }
            ),
            opts=child,
        )
        profile = iam.InstanceProfile(f"{name}-instance", role=role.name, tags=tags, opts=child)

        if args.user_data is not None:
            user_data: pulumi.Input[str] = base64.b64encode(args.user_data.encode()).decode()
        else:
            user_data = pulumi.Output.all(args.settings, args.secret_arns).apply(
                lambda values: base64.b64encode(
                    render_user_data(
                        values[0], values[1], args.package, args.region, args.service
                    ).encode()
                ).decode()
            )
        template = ec2.LaunchTemplate(
            f"{name}-template",
            image_id=args.image_id or image_for(args.instance_type),
            instance_type=args.instance_type,
            user_data=user_data,
            update_default_version=True,
            iam_instance_profile=ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            metadata_options=ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="enabled",
            ),
            block_device_mappings=[
                ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=20,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            network_interfaces=[
                ec2.LaunchTemplateNetworkInterfaceArgs(
                    associate_public_ip_address="false",
                    security_groups=[args.security_group_id],
                    delete_on_termination="true",
                )
            ],
            monitoring=ec2.LaunchTemplateMonitoringArgs(enabled=True),
            tag_specifications=[
                ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
                for kind in ("instance", "volume")
            ],
            tags=tags,
            opts=child,
        )

        now = args.now or datetime.now().astimezone()
        current_min, actions = schedule(args.peak_windows, args.min_size, args.max_size, now)
        desired = max(args.desired_size or current_min, current_min)
        group = autoscaling.Group(
            f"{name}-asg",
            name=args.group_name,
            vpc_zone_identifiers=args.app_subnet_ids,
            min_size=current_min,
            max_size=args.max_size,
            desired_capacity=desired,
            health_check_type="ELB",
            health_check_grace_period=120,
            default_instance_warmup=args.instance_warmup_s,
            target_group_arns=[args.target_group_arn],
            capacity_rebalance=True,
            launch_template=autoscaling.GroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            instance_refresh=autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=90,
                    instance_warmup=str(args.instance_warmup_s),
                    auto_rollback=True,
                ),
                triggers=["tag"],
            ),
            termination_policies=["OldestLaunchTemplate", "OldestInstance"],
            enabled_metrics=[
                autoscaling.Metric.GROUP_DESIRED_CAPACITY,
                autoscaling.Metric.GROUP_IN_SERVICE_INSTANCES,
                autoscaling.Metric.GROUP_MIN_SIZE,
                autoscaling.Metric.GROUP_MAX_SIZE,
            ],
            tags=[
                autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in sorted({**tags, "Name": args.group_name}.items())
            ],
            # Target tracking and scheduled actions own the desired capacity once running.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )
        if args.backlog is not None:
            autoscaling.Policy(
                f"{name}-backlog-per-instance",
                autoscaling_group_name=group.name,
                policy_type="TargetTrackingScaling",
                target_tracking_configuration=_backlog_tracking(args.backlog, group.name),
                opts=child,
            )
        else:
            autoscaling.Policy(
                f"{name}-requests-per-target",
                autoscaling_group_name=group.name,
                policy_type="TargetTrackingScaling",
                target_tracking_configuration=autoscaling.PolicyTargetTrackingConfigurationArgs(
                    predefined_metric_specification=autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="ALBRequestCountPerTarget",
                        resource_label=args.request_count_label,
                    ),
                    target_value=args.target_requests_per_target,
                ),
                opts=child,
            )
        for action in actions:
            autoscaling.Schedule(
                f"{name}-{action.name}",
                autoscaling_group_name=group.name,
                scheduled_action_name=action.name,
                start_time=action.start_time,
                min_size=action.min_size,
                max_size=action.max_size,
                desired_capacity=action.desired_capacity,
                opts=child,
            )

        self.group_name = group.name
        self.role_arn = role.arn
        self.register_outputs({"group_name": self.group_name, "role_arn": self.role_arn})


def _backlog_tracking(
    backlog: QueueBacklog, group_name: pulumi.Input[str]
) -> autoscaling.PolicyTargetTrackingConfigurationArgs:
    """Target tracking on messages waiting per in-service instance (metric math)."""
    spec = autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs
    metric = autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricArgs
    stat = autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatArgs  # noqa: E501
    inner = autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatMetricArgs  # noqa: E501
    dimension = autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatMetricDimensionArgs  # noqa: E501
    waiting = inner(
        namespace="AWS/AmazonMQ",
        metric_name="MessageCount",
        dimensions=[
            dimension(name="Broker", value=backlog.broker_name),
            dimension(name="VirtualHost", value="/"),
            dimension(name="Queue", value=backlog.queue),
        ],
    )
    serving = inner(
        namespace="AWS/AutoScaling",
        metric_name="GroupInServiceInstances",
        dimensions=[dimension(name="AutoScalingGroupName", value=group_name)],
    )
    return autoscaling.PolicyTargetTrackingConfigurationArgs(
        customized_metric_specification=spec(
            metrics=[
                metric(
                    id="waiting",
                    metric_stat=stat(metric=waiting, stat="Average"),
                    return_data=False,
                ),
                metric(
                    id="serving",
                    metric_stat=stat(metric=serving, stat="Average"),
                    return_data=False,
                ),
                metric(
                    id="per_instance",
                    expression="waiting / serving",
                    label="backlog per instance",
                    return_data=True,
                ),
            ]
        ),
        target_value=backlog.per_instance,
    )


__all__ = [
    "APP_PORT",
    "BACKOFFICE",
    "STOREFRONT",
    "AppTier",
    "AppTierArgs",
    "PeakCapacity",
    "QueueBacklog",
    "Service",
    "render_user_data",
    "schedule",
]
