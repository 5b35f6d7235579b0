"""The AWS driver against moto (and botocore Stubber where moto falls short). Never live AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_world
import boto3
import chaosaws.elasticache.actions
import chaosaws.elbv2.probes
import chaosaws.fis.actions
import pytest
from chaoslib.exceptions import ActivityFailed

import peakready.targets.aws.shared
from peakready.targets.aws import shared
from peakready.targets.aws.driver import AwsDriver

REGION = "eu-central-1"
AZS = [f"{REGION}a", f"{REGION}b", f"{REGION}c"]


def _group_instances(world: Any) -> list[dict[str, Any]]:
    asg = boto3.client("autoscaling", region_name=REGION)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[world.app_group])
    return list(group["AutoScalingGroups"][0]["Instances"])


def _state(instance_id: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(found["State"]["Name"])


# app tier ---------------------------------------------------------------------


def test_app_instances_are_reported_per_az(world: Any) -> None:
    driver = AwsDriver(world.configuration)

    instances = driver.app_instances()

    assert sorted(i["az"] for i in instances) == AZS
    assert all(i["healthy"] for i in instances)
    assert driver.app_group_at_desired()["ok"] is True


def test_kill_app_instance_terminates_one_instance_in_the_requested_az(world: Any) -> None:
    driver = AwsDriver(world.configuration)
    before = {i["InstanceId"]: i["AvailabilityZone"] for i in _group_instances(world)}

    killed = driver.kill_app_instance(az=AZS[1])

    assert killed["az"] == AZS[1]
    assert before[killed["id"]] == AZS[1]
    assert _state(killed["id"]) in ("shutting-down", "terminated")
    assert [i for i, az in before.items() if i != killed["id"]] == [
        i for i in before if i != killed["id"] and _state(i) == "running"
    ]


def test_group_refills_to_desired_after_an_instance_is_killed(world: Any) -> None:
    driver = AwsDriver(world.configuration)

    before = {i["InstanceId"]: i["AvailabilityZone"] for i in _group_instances(world)}

    killed = driver.kill_app_instance()

    assert killed["az"] == before[killed["id"]]
    current = [i["InstanceId"] for i in _group_instances(world)]
    assert killed["id"] not in current
    state = driver.app_group_at_desired()
    assert (state["desired"], state["healthy"], state["ok"]) == (3, 3, True)


def test_kill_app_instance_in_a_zone_outside_the_stack_is_refused(world: Any) -> None:
    driver = AwsDriver(world.configuration)

    with pytest.raises(ActivityFailed, match=r"az: 'us-east-1a' is not one of the stack's zones"):
        driver.kill_app_instance(az="us-east-1a")

    assert all(_state(i["InstanceId"]) == "running" for i in _group_instances(world))


def test_app_group_below_desired_is_not_ok(world: Any) -> None:
    asg = boto3.client("autoscaling", region_name=REGION)
    victim = _group_instances(world)[0]["InstanceId"]
    asg.set_instance_health(InstanceId=victim, HealthStatus="Unhealthy")

    state = AwsDriver(world.configuration).app_group_at_desired()

    assert (state["desired"], state["healthy"], state["ok"]) == (3, 2, False)


# database ---------------------------------------------------------------------


def test_fail_database_primary_reboots_with_force_failover(
    world: Any, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    result = AwsDriver(world.configuration).fail_database_primary()

    reboots = [params for op, params in calls if op == "RebootDBInstance"]
    assert reboots == [{"DBInstanceIdentifier": world.db_primary, "ForceFailover": True}]
    assert result == {"id": world.db_primary, "az": AZS[0], "deployment": "instance"}


def test_fail_database_primary_refuses_an_instance_without_standby(world: Any) -> None:
    single = "single-" + world.stack
    boto3.client("rds", region_name=REGION).create_db_instance(
        DBInstanceIdentifier=single,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="peakready",
        MasterUserPassword="not-a-real-secret-1",
        MultiAZ=False,
    )
    outputs = {**world.outputs, "db_primary": single}
    driver = AwsDriver({**world.configuration, "peakready_outputs": outputs})

    with pytest.raises(ActivityFailed, match=rf"{single} is not Multi-AZ, a reboot with failover"):
        driver.fail_database_primary()


def test_fail_database_primary_of_a_cluster_uses_failover_db_cluster(
    world: Any, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    rds = boto3.client("rds", region_name=REGION)
    cluster = aws_world.db_cluster(world.stack)
    for i in range(2):
        rds.create_db_instance(
            DBInstanceIdentifier=f"{cluster}-{i}",
            DBClusterIdentifier=cluster,
            Engine="postgres",
            DBInstanceClass="db.m6gd.large",
        )
    driver = AwsDriver(
        {**world.configuration, "peakready_outputs": {**world.outputs, "db_primary": cluster}}
    )

    result = driver.fail_database_primary()

    failovers = [params for op, params in calls if op == "FailoverDBCluster"]
    assert failovers == [
        {"DBClusterIdentifier": cluster, "TargetDBInstanceIdentifier": f"{cluster}-1"}
    ]
    assert result["deployment"] == "cluster"
    assert driver.db_primary()["id"] != result["id"]  # the writer moved


def test_stale_primary_check_needs_evidence_of_the_failover(world: Any) -> None:
    # moto records creation and backup events, no failover: without one the check fails.
    result = AwsDriver(world.configuration).stale_primary_rejects_writes(world.db_primary)

    assert result["failover_events"] == []
    assert result["ok"] is False


def test_stale_primary_check_passes_on_a_failover_event(world: Any, stub: Any) -> None:
    rds = stub(shared, "rds")
    primary = boto3.client("rds", region_name=REGION).describe_db_instances(
        DBInstanceIdentifier=world.db_primary
    )
    rds.add_response("describe_db_instances", primary, {"DBInstanceIdentifier": world.db_primary})
    rds.add_response(
        "describe_events",
        {
            "Events": [
                {
                    "SourceIdentifier": world.db_primary,
                    "Message": "Multi-AZ instance failover completed",
                    "EventCategories": ["failover"],
                }
            ]
        },
        {
            "SourceIdentifier": world.db_primary,
            "SourceType": "db-instance",
            "EventCategories": ["failover"],
            "Duration": 60,
        },
    )

    result = AwsDriver(world.configuration).stale_primary_rejects_writes(world.db_primary)

    assert result["ok"] is True
    assert result["failover_events"] == ["Multi-AZ instance failover completed"]


def test_a_read_replica_never_accepts_writes(world: Any) -> None:
    result = AwsDriver(world.configuration).stale_primary_rejects_writes(world.db_replica)

    assert (result["writable"], result["ok"]) == (False, True)


# cache ------------------------------------------------------------------------


def test_fail_cache_primary_calls_test_failover_on_the_primary_shard(world: Any, stub: Any) -> None:
    elasticache = stub(chaosaws.elasticache.actions, "elasticache")
    elasticache.add_response(
        "test_failover",
        {"ReplicationGroup": {"ReplicationGroupId": world.cache_group, "Status": "modifying"}},
        {"ReplicationGroupId": world.cache_group, "NodeGroupId": "0001"},
    )

    result = AwsDriver(world.configuration).fail_cache_primary()

    assert result["group"] == world.cache_group
    assert (result["node_group"], result["az"]) == ("0001", AZS[0])


def test_cache_primary_names_the_primary_and_its_az(world: Any) -> None:
    primary = AwsDriver(world.configuration).cache_primary()

    assert (primary["az"], primary["agreed"]) == (AZS[0], True)
    assert primary["id"]


def test_cache_primary_is_not_agreed_while_the_group_changes(world: Any, stub: Any) -> None:
    driver = AwsDriver(world.configuration)
    elasticache = stub(peakready.targets.aws.shared, "elasticache")
    elasticache.add_response(
        "describe_replication_groups",
        {"ReplicationGroups": [{"ReplicationGroupId": world.cache_group, "Status": "modifying"}]},
        {"ReplicationGroupId": world.cache_group},
    )

    assert driver.cache_primary() == {"id": None, "az": None, "agreed": False}


def test_fail_cache_primary_reports_the_api_refusal(world: Any, stub: Any) -> None:
    elasticache = stub(chaosaws.elasticache.actions, "elasticache")
    elasticache.add_client_error(
        "test_failover",
        service_error_code="TestFailoverNotAvailableFault",
        service_message="TestFailover limit reached",
    )

    with pytest.raises(ActivityFailed, match=r"TestFailover limit reached"):
        AwsDriver(world.configuration).fail_cache_primary()


def test_fail_cache_primary_needs_automatic_failover(world: Any) -> None:
    elasticache = boto3.client("elasticache", region_name=REGION)
    single = world.cache_group + "-single"
    elasticache.create_replication_group(
        ReplicationGroupId=single,
        ReplicationGroupDescription="no failover",
        Engine="redis",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=1,
        AutomaticFailoverEnabled=False,
    )
    driver = AwsDriver(
        {**world.configuration, "peakready_outputs": {**world.outputs, "cache_group": single}}
    )

    with pytest.raises(ActivityFailed, match=r"automatic failover 'disabled'"):
        driver.fail_cache_primary()


@pytest.mark.parametrize("method", ["stop_cache", "stop_search", "kill_search_node"])
def test_managed_tiers_cannot_be_stopped_and_say_why(world: Any, method: str) -> None:
    with pytest.raises(ActivityFailed, match=r"not supported on AWS: .* has no API"):
        getattr(AwsDriver(world.configuration), method)()


# availability zone ---------------------------------------------------------------


def test_az_power_template_targets_only_the_zone_and_the_stack(world: Any) -> None:
    template = AwsDriver(world.configuration).az_power_template(AZS[0])

    targets = template["targets"]
    subnet_of = {
        f"arn:aws:ec2:{REGION}:123456789012:subnet/{s}": az for az, s in world.subnets.items()
    }
    assert [subnet_of.get(arn) for arn in targets["Subnets"]["resourceArns"]] == [AZS[0]]
    instance_filters = {f["path"]: f["values"] for f in targets["App-Instances"]["filters"]}
    assert instance_filters["Placement.AvailabilityZone"] == [AZS[0]]
    assert targets["App-Instances"]["resourceTags"] == {
        "aws:autoscaling:groupName": world.app_group
    }
    assert targets["Cache"]["parameters"] == {"availabilityZoneIdentifier": AZS[0]}
    assert template["actions"]["Failover-Database"]["parameters"] == {"forceFailover": "true"}
    assert template["tags"]["peakready:az"] == AZS[0]


def test_az_power_template_leaves_the_database_alone_when_its_primary_is_elsewhere(
    world: Any,
) -> None:
    template = AwsDriver(world.configuration).az_power_template(AZS[2])

    assert "Failover-Database" not in template["actions"]
    assert "Database" not in template["targets"]
    assert "Stop-App-Instances" in template["actions"]


def test_power_off_and_on_az_starts_then_stops_the_fis_experiment(world: Any) -> None:
    driver = AwsDriver(world.configuration)
    fis = boto3.client("fis", region_name=REGION)

    started = driver.power_off_az(AZS[0])
    running = fis.get_experiment(id=started["experiment_id"])["experiment"]
    assert running["experimentTemplateId"] == started["template_id"]
    assert running["tags"]["peakready:az"] == AZS[0]
    assert running["state"]["status"] in ("pending", "initiating", "running")

    back = driver.power_on_az(AZS[0])

    assert back["stopped_experiments"] == [started["experiment_id"]]
    assert (
        fis.get_experiment(id=started["experiment_id"])["experiment"]["state"]["status"]
        == "stopped"
    )
    assert fis.list_experiment_templates()["experimentTemplates"] == []
    assert driver.power_on_az(AZS[0])["stopped_experiments"] == []  # idempotent


def test_power_off_az_without_a_fis_role_is_refused(world: Any) -> None:
    configuration = {k: v for k, v in world.configuration.items() if k != "peakready_fis_role_arn"}

    with pytest.raises(
        ActivityFailed, match=r"no IAM role for AWS FIS; set 'peakready_fis_role_arn'"
    ):
        AwsDriver(configuration).power_off_az(AZS[0])


def test_power_off_az_finds_the_stacks_own_fis_role(world: Any) -> None:
    configuration = {k: v for k, v in world.configuration.items() if k != "peakready_fis_role_arn"}
    driver = AwsDriver(configuration)
    arn = boto3.client("iam").create_role(
        RoleName=f"peakready-{driver.stack}-fis", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]

    assert driver.az_power_template(AZS[0])["roleArn"] == arn


# rollback -----------------------------------------------------------------------------


def test_restore_stops_every_fault_and_is_idempotent(world: Any) -> None:
    driver = AwsDriver(world.configuration)
    first = driver.power_off_az(AZS[0])
    second = driver.power_off_az(AZS[1])
    driver.kill_app_instance(az=AZS[2])

    restored = driver.restore()

    assert sorted(restored["stopped_experiments"]) == sorted(
        [first["experiment_id"], second["experiment_id"]]
    )
    assert restored["healthy"] is True
    assert restored["app_group"]["ok"] is True
    assert restored["db_primary"]["status"] == "available"
    assert restored["cache_group"]["status"] == "available"
    again = driver.restore()
    assert again["stopped_experiments"] == []
    assert again["app_group"]["ok"] is True


def test_restore_leaves_other_stacks_experiments_running(world: Any) -> None:
    mine = AwsDriver(world.configuration)
    other_outputs = {**world.outputs, "stack": "other-" + world.stack}
    other = AwsDriver({**world.configuration, "peakready_outputs": other_outputs})
    theirs = other.power_off_az(AZS[0])

    mine.restore()

    fis = boto3.client("fis", region_name=REGION)
    assert (
        fis.get_experiment(id=theirs["experiment_id"])["experiment"]["state"]["status"] != "stopped"
    )


def test_restore_gives_up_after_the_timeout_when_the_group_stays_short(world: Any) -> None:
    asg = boto3.client("autoscaling", region_name=REGION)
    asg.set_instance_health(
        InstanceId=_group_instances(world)[0]["InstanceId"], HealthStatus="Unhealthy"
    )
    driver = AwsDriver({**world.configuration, "peakready_aws_timeout_s": 0.2})

    with pytest.raises(
        ActivityFailed, match=r"app group back at desired size: not reached after 0 s"
    ):
        driver.restore()


# stack outputs ------------------------------------------------------------------------


def test_missing_output_key_names_the_key_and_the_source(world: Any) -> None:
    outputs = {k: v for k, v in world.outputs.items() if k != "app_group"}
    driver = AwsDriver({**world.configuration, "peakready_outputs": outputs})

    with pytest.raises(ActivityFailed) as caught:
        driver.kill_app_instance()

    assert str(caught.value).startswith(
        "stack outputs: 'app_group' is missing from configuration key 'peakready_outputs'"
    )


def test_outputs_are_read_from_the_outputs_file(world: Any, tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(world.outputs))
    configuration = {k: v for k, v in world.configuration.items() if k != "peakready_outputs"}

    driver = AwsDriver({**configuration, "peakready_outputs_file": str(path)})

    assert driver.outputs()["app_group"] == world.app_group


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"outputs.json: no such file"),
        ("{not json", r"outputs.json: not JSON"),
        ('["a list"]', r"outputs.json is not a JSON object"),
        ('{"target": "lab"}', r"has target 'lab', expected 'aws'"),
    ],
)
def test_bad_outputs_file_is_refused_clearly(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "outputs.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ActivityFailed, match=message):
        AwsDriver({"peakready_outputs_file": str(path), "aws_region": REGION}).outputs()


def test_without_outputs_file_or_pulumi_the_driver_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(
        ActivityFailed, match=r"no 'peakready_outputs_file' in the configuration and no pulumi CLI"
    ):
        AwsDriver({"peakready_stack": "dev", "aws_region": REGION}).outputs()


#: FIS action -> (target key, resource type), from the AWS FIS actions reference.
FIS_ACTIONS = {
    "aws:ec2:stop-instances": ("Instances", "aws:ec2:instance"),
    "aws:ec2:asg-insufficient-instance-capacity-error": (
        "AutoScalingGroups",
        "aws:ec2:autoscaling-group",
    ),
    "aws:network:disrupt-connectivity": ("Subnets", "aws:ec2:subnet"),
    "aws:rds:reboot-db-instances": ("DBInstances", "aws:rds:db"),
    "aws:rds:failover-db-cluster": ("Clusters", "aws:rds:cluster"),
    "aws:elasticache:replicationgroup-interrupt-az-power": (
        "ReplicationGroups",
        "aws:elasticache:replicationgroup",
    ),
}


def test_every_fis_action_targets_a_defined_target_of_the_right_type(world: Any) -> None:
    template = AwsDriver(world.configuration).az_power_template(AZS[0])

    used = set()
    for name, action in template["actions"].items():
        key, resource_type = FIS_ACTIONS[action["actionId"]]
        assert list(action["targets"]) == [key], name
        target = template["targets"][action["targets"][key]]
        assert target["resourceType"] == resource_type, name
        used.add(action["targets"][key])
    assert used == set(template["targets"])  # FIS refuses unused targets


@pytest.mark.parametrize(
    ("states", "ok"),
    [
        (["healthy", "healthy", "healthy", "draining"], True),  # the lost one deregistering
        (["healthy", "healthy", "initial"], False),  # the replacement not serving yet
        (["healthy", "healthy", "unhealthy"], False),
    ],
)
def test_group_at_desired_reads_the_load_balancer_target_states(
    world: Any, stub: Any, states: list[str], ok: bool
) -> None:
    tg_name = "tg-" + world.stack
    shared_elbv2 = stub(shared, "elbv2")
    shared_elbv2.add_response(
        "describe_target_groups",
        {"TargetGroups": [{"TargetGroupName": tg_name, "TargetGroupArn": world.target_group_arn}]},
        {"TargetGroupArns": [world.target_group_arn]},
    )
    probes_elbv2 = stub(chaosaws.elbv2.probes, "elbv2")
    probes_elbv2.add_response(
        "describe_target_groups",
        {"TargetGroups": [{"TargetGroupName": tg_name, "TargetGroupArn": world.target_group_arn}]},
        {"Names": [tg_name]},
    )
    probes_elbv2.add_response(
        "describe_target_health",
        {
            "TargetHealthDescriptions": [
                {"Target": {"Id": f"i-{n}"}, "TargetHealth": {"State": state}}
                for n, state in enumerate(states)
            ]
        },
        {"TargetGroupArn": world.target_group_arn},
    )

    state = AwsDriver(world.configuration).app_group_at_desired()

    assert state["targets"][tg_name]["healthy"] == states.count("healthy")
    assert state["ok"] is ok


def test_a_refused_fis_start_leaves_no_template_behind(world: Any, stub: Any) -> None:
    fis_stub = stub(chaosaws.fis.actions, "fis")
    fis_stub.add_client_error(
        "start_experiment",
        service_error_code="ServiceQuotaExceededException",
        service_message="too many running experiments",
    )

    with pytest.raises(ActivityFailed, match=r"too many running experiments"):
        AwsDriver(world.configuration).power_off_az(AZS[0])

    fis = boto3.client("fis", region_name=REGION)
    assert fis.list_experiment_templates()["experimentTemplates"] == []


# peak ---------------------------------------------------------------------------


def test_the_scaling_timeline_maps_activities_the_policy_and_in_service_datapoints(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    earlier = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)

    class Fake:
        def get_paginator(self, name: str) -> Any:
            assert name == "describe_scaling_activities"
            pages = [
                {
                    "Activities": [
                        {
                            "StartTime": at,
                            "Cause": "target tracking: 3 -> 5",
                            "StatusCode": "Successful",
                        },
                        {
                            "StartTime": earlier,
                            "Cause": "before the run",
                            "StatusCode": "Successful",
                        },
                    ]
                }
            ]
            return type("P", (), {"paginate": lambda self, **kw: pages})()

        def describe_policies(self, **kwargs: Any) -> dict[str, Any]:
            assert kwargs["PolicyTypes"] == ["TargetTrackingScaling"]
            return {"ScalingPolicies": [{"TargetTrackingConfiguration": {"TargetValue": 3600.0}}]}

        def get_metric_statistics(self, **kwargs: Any) -> dict[str, Any]:
            assert kwargs["MetricName"] == "GroupInServiceInstances"
            return {"Datapoints": [{"Timestamp": at, "Maximum": 5.0}]}

    driver = AwsDriver(world.configuration)
    monkeypatch.setattr(driver, "client", lambda service: Fake())
    timeline = driver.scaling_timeline(at.timestamp() - 60)
    assert timeline == [
        {
            "event": "scale",
            "at": at.timestamp(),
            "reason": "target tracking: 3 -> 5",
            "status": "Successful",
        },
        {"event": "in_service", "at": at.timestamp(), "in_service": 5, "target": 60.0},
    ]


# monitoring ---------------------------------------------------------------------


def test_alerts_are_the_stacks_alarms_in_alarm_state_named_as_the_catalogue(world: Any) -> None:
    driver = AwsDriver(world.configuration)
    cloudwatch = boto3.client("cloudwatch", region_name="eu-central-1")
    prefix = f"peakready-{driver.stack}-"
    ours = [prefix + a for a in ("OrderErrors", "CacheReplicationLag-redis-002", "UnhealthyHosts")]
    other = "peakready-other-OrderErrors"  # another stack's: not ours
    for alarm in [*ours, other]:
        severity = "ticket" if "Lag" in alarm else "page"  # as infra/alarms.py describes them
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            AlarmDescription=f"what it means ({severity})",
            MetricName="m",
            Namespace="n",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
    for alarm in (*ours[:2], other):  # UnhealthyHosts stays OK
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="drill")
    firing = driver.alerts()
    assert firing is not None
    assert sorted(a["labels"]["alertname"] for a in firing) == [
        "CacheReplicationLag",
        "OrderErrors",
    ]
    assert all(a["fingerprint"].startswith(prefix) and a["startsAt"] for a in firing)
    # What a drill waits on before its steady state: pages only (the lag is a ticket).
    assert driver.unsettled_alerts() == ["OrderErrors"]


def _state_change(alarm: str, at: float, old: str, new: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "AlarmName": alarm,
        "Timestamp": datetime.fromtimestamp(at, UTC),
        "HistoryItemType": "StateUpdate",
        "HistorySummary": f"Alarm updated from {old} to {new}",
        "HistoryData": json.dumps(
            {"version": "1.0", "oldState": {"stateValue": old}, "newState": {"stateValue": new}}
        ),
    }


def test_alert_history_turns_state_changes_into_episodes(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto keeps no alarm history: botocore's Stubber answers as CloudWatch does."""
    from botocore.stub import ANY, Stubber

    driver = AwsDriver(world.configuration)
    prefix = f"peakready-{driver.stack}-"
    client = boto3.client("cloudwatch", region_name="eu-central-1")
    monkeypatch.setattr(driver, "client", lambda service: client)
    t = 1_800_000_000.0
    items = [
        # firing when the window began: its first change leaves ALARM
        _state_change(prefix + "CacheUnavailable", t + 2, "ALARM", "OK"),
        # one episode, fired and resolved between two polls of a watcher
        _state_change(prefix + "DatabaseNoWriter", t + 10, "OK", "ALARM"),
        _state_change(prefix + "DatabaseNoWriter", t + 10.5, "ALARM", "OK"),
        _state_change(prefix + "OrderErrors", t + 12, "INSUFFICIENT_DATA", "ALARM"),
        _state_change("peakready-other-OrderErrors", t + 12, "OK", "ALARM"),  # not ours
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "describe_alarm_history",
            {"AlarmHistoryItems": items},
            {
                "HistoryItemType": "StateUpdate",
                "StartDate": ANY,
                "EndDate": ANY,
                "ScanBy": "TimestampAscending",
            },
        )
        episodes = driver.alert_history(t, t + 60)
    assert episodes is not None
    found = [(e.name, e.fired_at - t, e.resolved_at, e.carried) for e in episodes]
    assert found == [
        ("CacheUnavailable", 0.0, t + 2, True),
        ("DatabaseNoWriter", 10.0, t + 10.5, False),
        ("OrderErrors", 12.0, None, False),  # still firing at the window's end
    ]
    with Stubber(client) as stub:
        stub.add_client_error("describe_alarm_history", "AccessDenied")
        assert driver.alert_history(t, t + 60) is None  # no history: the polls decide


# order pipeline -----------------------------------------------------------------


def _backoffice_world(world: Any) -> AwsDriver:
    """The world with a back-office group of 2 (min 2) in its outputs."""
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.create_launch_template(
        LaunchTemplateName="backoffice-lt",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"},
    )
    boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
        AutoScalingGroupName="backoffice-test",
        LaunchTemplate={"LaunchTemplateName": "backoffice-lt", "Version": "$Latest"},
        MinSize=2,
        MaxSize=4,
        DesiredCapacity=2,
        VPCZoneIdentifier=",".join(world.subnets.values()),
    )
    outputs = {**world.outputs, "backoffice_group": "backoffice-test"}
    return AwsDriver(
        {**world.configuration, "peakready_outputs": outputs, "peakready_aws_poll_s": 0}
    )


def _backoffice_sizes() -> tuple[int, int, list[str]]:
    found = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=["backoffice-test"]
    )["AutoScalingGroups"][0]
    return found["MinSize"], found["DesiredCapacity"], [t["Key"] for t in found.get("Tags", [])]


def test_stop_consumers_empties_the_back_office_group_and_start_puts_it_back(world: Any) -> None:
    driver = _backoffice_world(world)

    stopped = driver.stop_consumers()
    assert len(stopped["stopped"]) == 2
    assert _backoffice_sizes() == (0, 0, ["peakready:consumers-stopped"])
    driver.stop_consumers()  # twice: the kept sizes stay the group's own, not 0
    started = driver.start_consumers()

    assert len(started["started"]) == 2
    assert _backoffice_sizes() == (2, 2, [])
    assert driver.start_consumers()["started"] == []  # idempotent: nothing kept, nothing done


def test_restore_brings_stopped_consumers_back(world: Any) -> None:
    driver = _backoffice_world(world)
    driver.stop_consumers()

    restored = driver.restore()

    assert len(restored["consumers"]["started"]) == 2
    assert _backoffice_sizes() == (2, 2, [])


def test_the_queue_leader_cannot_be_failed_on_aws_and_says_why(world: Any) -> None:
    with pytest.raises(ActivityFailed, match=r"not supported on AWS: Amazon MQ has no API"):
        AwsDriver(world.configuration).fail_queue_leader()
