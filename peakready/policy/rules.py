"""The resiliency and security invariants, as pulumi-policy validations.

Each validation reads the resource's properties as the engine names them (camelCase),
so the same functions serve ``pulumi preview --policy-pack policypack`` and the offline
preview (:mod:`peakready.policy.offline`). Whether a stack is protected comes from the
``peakready:protected`` tag the program puts on every data-bearing resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PROTECTED_TAG = "peakready:protected"
WEB_PORTS = (80, 443)
WORLD = ("0.0.0.0/0", "::/0")

LB = "aws:lb/loadBalancer:LoadBalancer"
ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EC2_INSTANCE = "aws:ec2/instance:Instance"
DB_INSTANCE = "aws:rds/instance:Instance"
DB_CLUSTER = "aws:rds/cluster:Cluster"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
SEARCH = "aws:opensearch/domain:Domain"
BACKUP_PLAN = "aws:backup/plan:Plan"
BACKUP_VAULT = "aws:backup/vault:Vault"
SUBNET = "aws:ec2/subnet:Subnet"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SUBNET_GROUPS = ("aws:rds/subnetGroup:SubnetGroup", "aws:elasticache/subnetGroup:SubnetGroup")
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
BROKER = "aws:mq/broker:Broker"


def _true(value: Any) -> bool:
    """Pulumi passes some booleans as strings ("true") — accept both spellings."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _get(props: Mapping[str, Any], *path: str) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _protected(props: Mapping[str, Any]) -> bool:
    tags = props.get("tags")
    if isinstance(tags, Mapping):
        return _true(tags.get(PROTECTED_TAG))
    if isinstance(tags, list):  # Auto Scaling groups: [{"key":…, "value":…}]
        return any(t.get("key") == PROTECTED_TAG and _true(t.get("value")) for t in tags)
    return False


def _is_replica(props: Mapping[str, Any]) -> bool:
    return bool(props.get("replicateSourceDb") or props.get("replicationSourceIdentifier"))


def _report(report: ReportViolation, message: str) -> None:
    report(message, None)


# --------------------------------------------------------------------------- multi-AZ


def validate_multi_az(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props, kind = args.props, args.resource_type
    if kind == ASG and len(props.get("vpcZoneIdentifiers") or []) < 2:
        _report(report, "Auto Scaling group must span at least 2 AZs (vpcZoneIdentifiers)")
    elif kind == LB and len(props.get("subnets") or props.get("subnetMappings") or []) < 2:
        _report(report, "load balancer must have a subnet in at least 2 AZs")
    elif kind in SUBNET_GROUPS and len(props.get("subnetIds") or []) < 2:
        _report(report, "subnet group must hold subnets in at least 2 AZs")
    elif kind == DB_INSTANCE and not _is_replica(props) and not _true(props.get("multiAz")):
        _report(report, "database primary must be Multi-AZ (multiAz: true)")
    elif kind == DB_CLUSTER and len(props.get("availabilityZones") or []) < 2:
        _report(report, "database cluster must span at least 2 AZs (availabilityZones)")
    elif kind == REDIS:
        nodes = props.get("numCacheClusters") or 1 + (props.get("replicasPerNodeGroup") or 0)
        if nodes < 2 or not _true(props.get("multiAzEnabled")):
            _report(report, "Redis must have a replica in another AZ and multiAzEnabled: true")
        if not _true(props.get("automaticFailoverEnabled")):
            _report(report, "Redis must fail over automatically (automaticFailoverEnabled)")
    elif kind == BROKER and props.get("deploymentMode") not in (
        "CLUSTER_MULTI_AZ",
        "ACTIVE_STANDBY_MULTI_AZ",
    ):
        _report(
            report,
            f"message broker must span AZs (deploymentMode: {props.get('deploymentMode')!r}, "
            "expected CLUSTER_MULTI_AZ)",
        )
    elif kind == SEARCH:
        cluster = props.get("clusterConfig") or {}
        zones = _get(cluster, "zoneAwarenessConfig", "availabilityZoneCount") or 2
        if not _true(cluster.get("zoneAwarenessEnabled")) or zones < 2:
            _report(report, "OpenSearch must have zone awareness over at least 2 AZs")
        nodes = cluster.get("instanceCount") or 1
        if nodes < zones or nodes % zones:
            _report(
                report,
                f"OpenSearch data nodes ({nodes}) must be a multiple of its AZ count ({zones}) "
                "so that every AZ holds the same share",
            )
        if (
            _true(cluster.get("dedicatedMasterEnabled"))
            and (cluster.get("dedicatedMasterCount") or 0) < 3
        ):
            _report(report, "OpenSearch dedicated masters must be at least 3")


# --------------------------------------------------------------------------- encryption


def validate_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props, kind = args.props, args.resource_type
    if kind in (DB_INSTANCE, DB_CLUSTER):
        if not _is_replica(props) and not _true(props.get("storageEncrypted")):
            _report(report, "database storage must be encrypted (storageEncrypted: true)")
    elif kind == REDIS:
        if not _true(props.get("atRestEncryptionEnabled")):
            _report(report, "Redis must be encrypted at rest (atRestEncryptionEnabled)")
        if not _true(props.get("transitEncryptionEnabled")):
            _report(report, "Redis must encrypt in transit (transitEncryptionEnabled)")
        if not props.get("authToken"):
            _report(report, "Redis must demand a password (authToken: Redis AUTH)")
    elif kind == SEARCH:
        if not _true(_get(props, "encryptAtRest", "enabled")):
            _report(report, "OpenSearch must be encrypted at rest (encryptAtRest.enabled)")
        if not _true(_get(props, "nodeToNodeEncryption", "enabled")):
            _report(report, "OpenSearch must encrypt node to node (nodeToNodeEncryption.enabled)")
        if not _true(_get(props, "domainEndpointOptions", "enforceHttps")):
            _report(report, "OpenSearch must enforce HTTPS (domainEndpointOptions.enforceHttps)")
    elif kind == BROKER:
        options = props.get("encryptionOptions") or {}
        if options.get("useAwsOwnedKey") is False and not options.get("kmsKeyId"):
            _report(report, "message broker must be encrypted at rest (encryptionOptions)")
        users = props.get("users")  # a list, or a secret the engine will not show
        if not users or (
            isinstance(users, list)
            and not all(isinstance(u, Mapping) and u.get("password") for u in users)
        ):
            _report(report, "message broker users must have passwords")
    elif kind == LAUNCH_TEMPLATE:
        for mapping in props.get("blockDeviceMappings") or []:
            ebs = mapping.get("ebs")
            if ebs is not None and not _true(ebs.get("encrypted")):
                _report(report, f"volume {mapping.get('deviceName')} must be encrypted")


# --------------------------------------------------------------------------- exposure


def _world_ingress(cidrs: list[str], low: int | None, high: int | None) -> bool:
    """True when a rule opens something other than one web port to the whole internet."""
    if not any(c in WORLD for c in cidrs):
        return False
    return not (low == high and low in WEB_PORTS)


def validate_not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props, kind = args.props, args.resource_type
    if kind in (DB_INSTANCE, DB_CLUSTER) and _true(props.get("publiclyAccessible")):
        _report(report, "database must not be publicly accessible")
    elif kind == LAUNCH_TEMPLATE:
        for nic in props.get("networkInterfaces") or []:
            if _true(nic.get("associatePublicIpAddress")):
                _report(report, "app instances must not get a public IP")
    elif kind == EC2_INSTANCE and _true(props.get("associatePublicIpAddress")):
        _report(report, "instances must not get a public IP")
    elif kind == SUBNET and _true(props.get("mapPublicIpOnLaunch")):
        _report(report, "subnets must not assign public IPs on launch")
    elif kind == BROKER and (_true(props.get("publiclyAccessible")) or not props.get("subnetIds")):
        _report(report, "message broker must not be publicly accessible (and live in subnets)")
    elif kind == SEARCH and not props.get("vpcOptions"):
        _report(report, "OpenSearch must live in the VPC (vpcOptions), not on a public endpoint")
    elif kind == PUBLIC_ACCESS_BLOCK:
        for key in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            if not _true(props.get(key)):
                _report(report, f"S3 public access block must set {key}: true")
    elif kind == SG:
        for rule in props.get("ingress") or []:
            cidrs = [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]
            if _world_ingress(cidrs, rule.get("fromPort"), rule.get("toPort")):
                _report(
                    report,
                    f"ingress {rule.get('fromPort')}-{rule.get('toPort')} is open "
                    "to the internet; only 80/443 on the load balancer may be",
                )
    elif kind == SG_RULE and props.get("type") == "ingress":
        cidrs = [*(props.get("cidrBlocks") or []), *(props.get("ipv6CidrBlocks") or [])]
        if _world_ingress(cidrs, props.get("fromPort"), props.get("toPort")):
            _report(
                report,
                f"ingress {props.get('fromPort')}-{props.get('toPort')} is open to "
                "the internet; only 80/443 on the load balancer may be",
            )
    elif kind == SG_INGRESS:
        cidrs = [c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if c]
        if _world_ingress(cidrs, props.get("fromPort"), props.get("toPort")):
            _report(
                report,
                f"ingress {props.get('fromPort')}-{props.get('toPort')} is open to "
                "the internet; only 80/443 on the load balancer may be",
            )


# --------------------------------------------------------------------------- backups


def validate_backups(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props, kind = args.props, args.resource_type
    if kind in (DB_INSTANCE, DB_CLUSTER) and not _is_replica(props):
        if (props.get("backupRetentionPeriod") or 0) < 1:
            _report(report, "database backups must be on (backupRetentionPeriod ≥ 1 day)")
    elif kind == REDIS and (props.get("snapshotRetentionLimit") or 0) < 1:
        _report(report, "Redis snapshots must be kept (snapshotRetentionLimit ≥ 1 day)")
    elif kind == BACKUP_PLAN:
        rules = props.get("rules") or []
        if not rules:
            _report(report, "backup plan has no rule")
        if _protected(props) and not all(r.get("copyActions") for r in rules):
            _report(report, "protected stack: every backup rule must copy to a second region")


# --------------------------------------------------------------------------- IMDSv2


def validate_imdsv2(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type in (LAUNCH_TEMPLATE, EC2_INSTANCE):
        tokens = _get(args.props, "metadataOptions", "httpTokens")
        if tokens != "required":
            _report(report, f"IMDSv2 must be required (metadataOptions.httpTokens: {tokens!r})")


# --------------------------------------------------------------------------- deletion


def validate_deletion_protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props, kind = args.props, args.resource_type
    if not _protected(props):
        return
    if kind in (DB_INSTANCE, DB_CLUSTER) and not _true(props.get("deletionProtection")):
        _report(report, "protected stack: database needs deletionProtection: true")
    elif kind == LB and not _true(props.get("enableDeletionProtection")):
        _report(report, "protected stack: load balancer needs enableDeletionProtection: true")
    elif kind == BACKUP_VAULT and _true(props.get("forceDestroy")):
        _report(report, "protected stack: backup vault must not be force-destroyable")


# --------------------------------------------------------------------------- alarms

#: Alarms a tier needs once the stack holds that tier: resource type → metric names.
REQUIRED_ALARMS: dict[str, tuple[str, ...]] = {
    LB: ("HTTPCode_ELB_5XX_Count|HTTPCode_Target_5XX_Count", "UnHealthyHostCount"),
    DB_INSTANCE: ("CPUUtilization", "FreeStorageSpace", "ReplicaLag"),
    DB_CLUSTER: ("CPUUtilization", "FreeStorageSpace", "ReplicaLag"),
    REDIS: ("ReplicationLag", "Evictions"),
    SEARCH: ("ClusterStatus.red",),
    BROKER: ("MessageCount", "BacklogAgeSeconds"),
}


def validate_alarms(args: StackValidationArgs, report: ReportViolation) -> None:
    types = {r.resource_type for r in args.resources}
    alarms = [r.props for r in args.resources if r.resource_type == ALARM]
    if not any(r.resource_type == TOPIC for r in args.resources):
        report("no SNS topic: alarms would notify nobody", None)
    for alarm in alarms:
        if not alarm.get("alarmActions"):
            report(f"alarm on {alarm.get('metricName')} has no alarmActions", None)
    metrics = {a.get("metricName") for a in alarms}
    for kind, needed in REQUIRED_ALARMS.items():
        if kind not in types:
            continue
        for choice in needed:
            if not metrics & set(choice.split("|")):
                report(f"no alarm on {choice.replace('|', ' or ')} for {kind}", None)


def validate_waf(args: StackValidationArgs, report: ReportViolation) -> None:
    """A protected stack's load balancer sits behind a WAF web ACL with a rate-based rule."""
    protected = any(r.resource_type == LB and _protected(r.props) for r in args.resources) or any(
        _true(_get(r.props, "enableDeletionProtection")) for r in args.resources
    )
    if not protected:
        return
    limited = [
        r
        for r in args.resources
        if r.resource_type == WEB_ACL
        and any(
            _get(rule, "statement", "rateBasedStatement") for rule in r.props.get("rules") or []
        )
    ]
    if not limited:
        report(
            "protected stack: no WAF web ACL with a rate-based rule "
            "(load_balancer.rate_limit_per_ip)",
            None,
        )
    elif not any(r.resource_type == WEB_ACL_ASSOCIATION for r in args.resources):
        report("protected stack: the WAF web ACL is not associated with the load balancer", None)


MANDATORY = EnforcementLevel.MANDATORY

POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="every-tier-multi-az",
        description="Every tier spans several AZs: ASG, ALB, subnet groups, database, Redis, "
        "OpenSearch, the message broker.",
        validate=validate_multi_az,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="encryption-on",
        description="Encrypted at rest and in transit: RDS, Redis (with AUTH), OpenSearch, EBS.",
        validate=validate_encryption,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="nothing-data-bearing-public",
        description="No public database, search, bucket or instance IP; only 80/443 on the "
        "load balancer are open to the internet.",
        validate=validate_not_public,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="backups-on",
        description="Automated backups and snapshots are kept; protected stacks copy backups "
        "to a second region.",
        validate=validate_backups,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="imdsv2-required",
        description="Instances require IMDSv2 session tokens.",
        validate=validate_imdsv2,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="deletion-protection-on-protected-stacks",
        description="On protected stacks, databases and the load balancer cannot be deleted "
        "by accident.",
        validate=validate_deletion_protection,
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name="rate-limited-on-protected-stacks",
        description="On protected stacks, a WAF web ACL with a per-client rate-based rule "
        "fronts the load balancer.",
        validate=validate_waf,
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name="peak-alarms-present",
        description="Alarms that matter at peak exist for every tier and notify an SNS topic.",
        validate=validate_alarms,
        enforcement_level=MANDATORY,
    ),
]
