"""A small moto world shaped like a peakready AWS stack, shared by the AWS tests.

VPC with one private subnet per AZ (3 AZs), a launch template and an Auto Scaling group
whose instances are placed one per AZ by hand (moto would put them all in the first
AZ), an ALB target group attached to the group, an RDS Multi-AZ PostgreSQL primary with
a read replica, an ElastiCache replication group with automatic failover, an AWS Backup
vault. ``World.configuration`` is the Chaos Toolkit configuration a drill would pass.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.loaders import create_loader
from moto import mock_aws

REGION = "eu-central-1"
AZS = [f"{REGION}a", f"{REGION}b", f"{REGION}c"]


@dataclass
class World:
    stack: str
    app_group: str
    vpc_id: str
    subnets: dict[str, str]  # az -> subnet id
    security_group: str
    target_group_arn: str
    db_primary: str
    db_replica: str
    db_subnet_group: str
    cache_group: str
    backup_vault: str
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def configuration(self) -> dict[str, Any]:
        return {
            "peakready_target": "aws",
            "peakready_stack": self.stack,
            "peakready_outputs": self.outputs,
            "aws_region": REGION,
            "peakready_aws_poll_s": 0.01,
            "peakready_aws_timeout_s": 5,
            "peakready_fis_role_arn": "arn:aws:iam::123456789012:role/peakready-fis",
        }


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials first, then moto; no default boto3 session leaks between tests."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with mock_aws():
        # A fresh default session per test (the code under test builds its clients from
        # it), sharing one loader of the service models: loading them is most of the cost.
        boto3.setup_default_session(region_name=REGION)
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION._session.register_component("data_loader", _LOADER)
        yield


_LOADER = create_loader()


@pytest.fixture
def world(aws: None) -> World:
    return build_world()


def build_world() -> World:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        az: ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=az)[
            "Subnet"
        ]["SubnetId"]
        for i, az in enumerate(AZS)
    }
    sg = ec2.create_security_group(GroupName=name("data"), Description="data", VpcId=vpc_id)
    security_group = sg["GroupId"]

    stack = name("stack")
    app_group = _app_group(ec2, subnets, security_group)
    target_group_arn = _target_group(vpc_id, subnets, app_group)
    db_primary, db_replica, db_subnet_group = _database(subnets, security_group)
    cache_group = _cache(subnets, security_group)
    vault = name("vault")
    boto3.client("backup", region_name=REGION).create_backup_vault(BackupVaultName=vault)

    outputs = {
        "stack": stack,
        "target": "aws",
        "availability_zones": AZS,
        "endpoint": "http://alb.example.invalid",
        "app_group": app_group,
        "db_primary": db_primary,
        "db_replicas": [db_replica],
        "cache_group": cache_group,
        "search_domain": name("search"),
        "backup_vault": vault,
    }
    return World(
        stack=stack,
        app_group=app_group,
        vpc_id=vpc_id,
        subnets=subnets,
        security_group=security_group,
        target_group_arn=target_group_arn,
        db_primary=db_primary,
        db_replica=db_replica,
        db_subnet_group=db_subnet_group,
        cache_group=cache_group,
        backup_vault=vault,
        outputs=outputs,
    )


def _app_group(ec2: Any, subnets: dict[str, str], security_group: str) -> str:
    template = name("lt")
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"},
    )
    group = name("storefront")
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
        MinSize=0,
        MaxSize=6,
        DesiredCapacity=0,
        VPCZoneIdentifier=",".join(subnets.values()),
    )
    # moto launches every instance in the first AZ: place one per AZ ourselves.
    ids = [
        ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.small",
            SubnetId=subnet,
            SecurityGroupIds=[security_group],
        )["Instances"][0]["InstanceId"]
        for subnet in subnets.values()
    ]
    autoscaling.attach_instances(AutoScalingGroupName=group, InstanceIds=ids)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=group, MinSize=3)
    return group


def _target_group(vpc_id: str, subnets: dict[str, str], group: str) -> str:
    elbv2 = boto3.client("elbv2", region_name=REGION)
    lb = elbv2.create_load_balancer(Name=name("alb")[:32], Subnets=list(subnets.values()))
    tg = elbv2.create_target_group(
        Name=name("tg")[:32], Protocol="HTTP", Port=8080, VpcId=vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )
    boto3.client("autoscaling", region_name=REGION).attach_load_balancer_target_groups(
        AutoScalingGroupName=group, TargetGroupARNs=[tg]
    )
    return str(tg)


def _database(subnets: dict[str, str], security_group: str) -> tuple[str, str, str]:
    rds = boto3.client("rds", region_name=REGION)
    subnet_group = name("db-subnets")
    rds.create_db_subnet_group(
        DBSubnetGroupName=subnet_group,
        DBSubnetGroupDescription="data subnets",
        SubnetIds=list(subnets.values()),
    )
    primary = name("db")
    rds.create_db_instance(
        DBInstanceIdentifier=primary,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        EngineVersion="15.4",
        AllocatedStorage=20,
        MasterUsername="peakready",
        MasterUserPassword="not-a-real-secret-1",
        MultiAZ=True,
        AvailabilityZone=AZS[0],
        DBSubnetGroupName=subnet_group,
        VpcSecurityGroupIds=[security_group],
        BackupRetentionPeriod=3,
    )
    replica = name("db-replica")
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier=replica,
        SourceDBInstanceIdentifier=primary,
        AvailabilityZone=AZS[1],
    )
    return primary, replica, subnet_group


def db_cluster(stack: str) -> str:
    """A Multi-AZ DB cluster (not part of the world: the shipped stacks use instances)."""
    cluster = "cluster-" + stack
    boto3.client("rds", region_name=REGION).create_db_cluster(
        DBClusterIdentifier=cluster,
        Engine="postgres",
        MasterUsername="peakready",
        MasterUserPassword="not-a-real-secret-1",
        DBClusterInstanceClass="db.m6gd.large",
        AllocatedStorage=100,
        StorageType="io1",
        Iops=1000,
    )
    return cluster


def _cache(subnets: dict[str, str], security_group: str) -> str:
    elasticache = boto3.client("elasticache", region_name=REGION)
    subnet_group = name("cache-subnets")
    elasticache.create_cache_subnet_group(
        CacheSubnetGroupName=subnet_group,
        CacheSubnetGroupDescription="data subnets",
        SubnetIds=list(subnets.values()),
    )
    group = name("cache")
    elasticache.create_replication_group(
        ReplicationGroupId=group,
        ReplicationGroupDescription="peakready cache",
        Engine="redis",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        CacheSubnetGroupName=subnet_group,
        SecurityGroupIds=[security_group],
        PreferredCacheClusterAZs=AZS[:2],
    )
    return group


@pytest.fixture
def calls(aws: None) -> list[tuple[str, dict[str, Any]]]:
    """Every AWS request made through the default session: ``(Operation, params)``."""
    recorded: list[tuple[str, dict[str, Any]]] = []
    assert boto3.DEFAULT_SESSION is not None  # set up by the aws fixture

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        recorded.append((model.name, dict(params)))

    boto3.DEFAULT_SESSION.events.register("provide-client-params.*.*", record)
    return recorded
