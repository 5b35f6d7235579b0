import copy
import json

import pytest

from peakready.policy import POLICIES, evaluate
from peakready.preview.runner import build_plan
from peakready.topology import REPO_ROOT


def _plan(*resources):
    regs = [
        {
            "urn": f"urn:{t}::{n}",
            "type": t,
            "name": n,
            "parent_urn": "",
            "protect": False,
            "inputs": inputs,
        }
        for t, n, inputs in resources
    ]
    return build_plan("unit", regs, {}, [], None)


def _violations(plan, policy):
    return [v for v in evaluate(plan, [p for p in POLICIES if p.name == policy])]


GOOD_DB = {
    "multiAz": True,
    "storageEncrypted": True,
    "publiclyAccessible": False,
    "backupRetentionPeriod": 7,
    "deletionProtection": True,
    "tags": {"peakready:protected": "true"},
}
GOOD_REDIS = {
    "numCacheClusters": 3,
    "multiAzEnabled": True,
    "automaticFailoverEnabled": True,
    "atRestEncryptionEnabled": True,
    "transitEncryptionEnabled": True,
    "authToken": "[secret]",
    "snapshotRetentionLimit": 1,
}
GOOD_TEMPLATE = {
    "metadataOptions": {"httpTokens": "required"},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}],
    "networkInterfaces": [{"associatePublicIpAddress": "false"}],
}
ZONES_2 = {"zoneAwarenessEnabled": True, "zoneAwarenessConfig": {"availabilityZoneCount": 2}}
DB = "aws:rds/instance:Instance"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
LT = "aws:ec2/launchTemplate:LaunchTemplate"


def _with(base, **changes):
    value = copy.deepcopy(base)
    value.update(changes)
    return value


@pytest.fixture(scope="module")
def prod_plan():
    import os

    from peakready.preview.runner import record

    os.environ["PEAKREADY_NOW"] = "2026-11-01T00:00:00+00:00"
    try:
        return record(REPO_ROOT, "prod")
    finally:
        os.environ.pop("PEAKREADY_NOW")


def test_prod_plan_passes_every_policy(prod_plan):
    assert evaluate(prod_plan) == []


BROKER = "aws:mq/broker:Broker"
GOOD_BROKER = {
    "deploymentMode": "CLUSTER_MULTI_AZ",
    "publiclyAccessible": False,
    "subnetIds": ["a", "b", "c"],
    "encryptionOptions": {"useAwsOwnedKey": True},
    "users": "[secret]",
}


@pytest.mark.parametrize(
    ("policy", "kind", "good", "bad", "message"),
    [
        ("every-tier-multi-az", DB, GOOD_DB, _with(GOOD_DB, multiAz=False), "must be Multi-AZ"),
        (
            "every-tier-multi-az",
            REDIS,
            GOOD_REDIS,
            _with(GOOD_REDIS, numCacheClusters=1),
            "replica in another AZ",
        ),
        (
            "every-tier-multi-az",
            "aws:autoscaling/group:Group",
            {"vpcZoneIdentifiers": ["a", "b"]},
            {"vpcZoneIdentifiers": ["a"]},
            "at least 2 AZs",
        ),
        (
            "every-tier-multi-az",
            "aws:opensearch/domain:Domain",
            {"clusterConfig": {**ZONES_2, "instanceCount": 4}},
            {"clusterConfig": {**ZONES_2, "instanceCount": 3}},
            "must be a multiple of its AZ count (2)",
        ),
        (
            "every-tier-multi-az",
            BROKER,
            GOOD_BROKER,
            _with(GOOD_BROKER, deploymentMode="SINGLE_INSTANCE"),
            "message broker must span AZs",
        ),
        (
            "encryption-on",
            BROKER,
            GOOD_BROKER,
            _with(GOOD_BROKER, encryptionOptions={"useAwsOwnedKey": False}),
            "encrypted at rest",
        ),
        (
            "encryption-on",
            BROKER,
            GOOD_BROKER,
            _with(GOOD_BROKER, users=[{"username": "peakready"}]),
            "must have passwords",
        ),
        (
            "nothing-data-bearing-public",
            BROKER,
            GOOD_BROKER,
            _with(GOOD_BROKER, publiclyAccessible=True),
            "must not be publicly accessible",
        ),
        ("encryption-on", DB, GOOD_DB, _with(GOOD_DB, storageEncrypted=False), "encrypted"),
        (
            "encryption-on",
            REDIS,
            GOOD_REDIS,
            _with(GOOD_REDIS, transitEncryptionEnabled=False),
            "in transit",
        ),
        (
            "encryption-on",
            REDIS,
            GOOD_REDIS,
            {k: v for k, v in GOOD_REDIS.items() if k != "authToken"},
            "demand a password",
        ),
        (
            "encryption-on",
            LT,
            GOOD_TEMPLATE,
            _with(GOOD_TEMPLATE, blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {}}]),
            "must be encrypted",
        ),
        (
            "nothing-data-bearing-public",
            DB,
            GOOD_DB,
            _with(GOOD_DB, publiclyAccessible=True),
            "publicly accessible",
        ),
        (
            "nothing-data-bearing-public",
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            {"cidrIpv4": "0.0.0.0/0", "fromPort": 443, "toPort": 443},
            {"cidrIpv4": "0.0.0.0/0", "fromPort": 5432, "toPort": 5432},
            "open to the internet",
        ),
        (
            "nothing-data-bearing-public",
            "aws:ec2/securityGroup:SecurityGroup",
            {"ingress": [{"cidrBlocks": ["10.0.0.0/16"], "fromPort": 22, "toPort": 22}]},
            {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 22, "toPort": 22}]},
            "open to the internet",
        ),
        (
            "nothing-data-bearing-public",
            LT,
            GOOD_TEMPLATE,
            _with(GOOD_TEMPLATE, networkInterfaces=[{"associatePublicIpAddress": "true"}]),
            "public IP",
        ),
        (
            "nothing-data-bearing-public",
            "aws:opensearch/domain:Domain",
            {"vpcOptions": {"subnetIds": ["a"]}},
            {},
            "in the VPC",
        ),
        ("backups-on", DB, GOOD_DB, _with(GOOD_DB, backupRetentionPeriod=0), "backups must be on"),
        ("backups-on", REDIS, GOOD_REDIS, _with(GOOD_REDIS, snapshotRetentionLimit=0), "snapshots"),
        (
            "backups-on",
            "aws:backup/plan:Plan",
            {
                "rules": [{"copyActions": [{"destinationVaultArn": "x"}]}],
                "tags": {"peakready:protected": "true"},
            },
            {"rules": [{"ruleName": "daily"}], "tags": {"peakready:protected": "true"}},
            "second region",
        ),
        (
            "imdsv2-required",
            LT,
            GOOD_TEMPLATE,
            _with(GOOD_TEMPLATE, metadataOptions={"httpTokens": "optional"}),
            "IMDSv2",
        ),
        (
            "deletion-protection-on-protected-stacks",
            DB,
            GOOD_DB,
            _with(GOOD_DB, deletionProtection=False),
            "deletionProtection",
        ),
        (
            "deletion-protection-on-protected-stacks",
            "aws:lb/loadBalancer:LoadBalancer",
            {"enableDeletionProtection": True, "tags": {"peakready:protected": "true"}},
            {"enableDeletionProtection": False, "tags": {"peakready:protected": "true"}},
            "enableDeletionProtection",
        ),
    ],
)
def test_policy_catches_a_violating_resource(policy, kind, good, bad, message):
    assert _violations(_plan((kind, "good", good)), policy) == []
    (violation,) = _violations(_plan((kind, "bad", bad)), policy)
    assert violation.policy == policy
    assert violation.resource == f"{kind}::bad"
    assert message in violation.message
    assert violation.mandatory


def test_deletion_protection_is_not_required_on_unprotected_stacks():
    dev_db = _with(GOOD_DB, deletionProtection=False, tags={"peakready:protected": "false"})
    assert _violations(_plan((DB, "dev", dev_db)), "deletion-protection-on-protected-stacks") == []


def test_replicas_inherit_backups_and_multi_az_from_their_primary():
    replica = {"replicateSourceDb": "primary", "backupRetentionPeriod": 0, "multiAz": False}
    plan = _plan((DB, "replica", replica))
    assert _violations(plan, "every-tier-multi-az") == []
    assert _violations(plan, "backups-on") == []


def test_missing_alarms_are_a_stack_violation(prod_plan):
    stripped = json.loads(json.dumps(prod_plan))
    stripped["resources"] = [
        r
        for r in stripped["resources"]
        if not (
            r["type"] == "aws:cloudwatch/metricAlarm:MetricAlarm"
            and r["inputs"].get("metricName") in ("ReplicationLag", "ClusterStatus.red")
        )
    ]
    messages = sorted(v.message for v in _violations(stripped, "peak-alarms-present"))
    assert messages == [
        "no alarm on ClusterStatus.red for aws:opensearch/domain:Domain",
        "no alarm on ReplicationLag for aws:elasticache/replicationGroup:ReplicationGroup",
    ]


def test_a_protected_stack_without_its_waf_rate_rule_is_a_violation(prod_plan):
    assert _violations(prod_plan, "rate-limited-on-protected-stacks") == []
    waf = "aws:wafv2/webAcl:WebAcl"
    assert any(r["type"] == waf for r in prod_plan["resources"])
    unlimited = json.loads(json.dumps(prod_plan))
    for r in unlimited["resources"]:
        if r["type"] == waf:
            r["inputs"]["rules"] = []
    (violation,) = _violations(unlimited, "rate-limited-on-protected-stacks")
    assert "no WAF web ACL with a rate-based rule" in violation.message
    loose = json.loads(json.dumps(prod_plan))
    loose["resources"] = [
        r
        for r in loose["resources"]
        if r["type"] != "aws:wafv2/webAclAssociation:WebAclAssociation"
    ]
    (violation,) = _violations(loose, "rate-limited-on-protected-stacks")
    assert "not associated with the load balancer" in violation.message


def test_policy_pack_imports_the_same_policies():
    source = (REPO_ROOT / "policypack" / "__main__.py").read_text()
    assert "from peakready.policy import POLICIES" in source
    assert len({p.name for p in POLICIES}) == len(POLICIES) == 8
