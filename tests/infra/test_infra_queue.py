import json

from peakready.policy import evaluate

BROKER = "aws:mq/broker:Broker"
ASG = "aws:autoscaling/group:Group"
DB = "aws:rds/instance:Instance"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def test_the_broker_is_a_private_three_az_rabbitmq_cluster_with_a_secret_password(prod_plan, q):
    broker = q.one(prod_plan, BROKER)["inputs"]
    assert broker["engineType"] == "RabbitMQ"
    assert broker["deploymentMode"] == "CLUSTER_MULTI_AZ"
    assert broker["publiclyAccessible"] is False
    assert broker["subnetIds"] == [f"net-data-eu-central-1{z}-id" for z in "abc"]
    assert broker["securityGroups"] == ["sg-queue-id"]
    assert broker["users"] == "[secret]"
    assert "mock-" not in json.dumps(prod_plan)  # no generated password anywhere in the plan


def test_workers_have_their_own_group_over_every_az_scaled_on_the_backlog(prod_plan, q):
    group = q.one(prod_plan, ASG, "backoffice-workers-asg")["inputs"]
    assert group["name"] == "backoffice-prod"
    assert len(group["vpcZoneIdentifiers"]) == 3
    assert (group["minSize"], group["maxSize"]) == (3, 12)
    policy = q.one(
        prod_plan, "aws:autoscaling/policy:Policy", "backoffice-workers-backlog-per-instance"
    )
    metrics = policy["inputs"]["targetTrackingConfiguration"]["customizedMetricSpecification"]
    assert [m["id"] for m in metrics["metrics"]] == ["waiting", "serving", "per_instance"]
    assert metrics["metrics"][2]["expression"] == "waiting / serving"
    # 400 orders/s per worker, 60 s age objective: half of what a worker clears in it
    assert policy["inputs"]["targetTrackingConfiguration"]["targetValue"] == 12000
    script = q.one(
        prod_plan, "aws:ec2/launchTemplate:LaunchTemplate", "backoffice-workers-template"
    )
    assert script["inputs"]["userData"]  # rendered; its contents are the app tier test's


def test_the_back_office_database_is_apart_from_the_shop_with_a_replica_for_reports(prod_plan, q):
    found = {r["name"]: r["inputs"] for r in q.of_type(prod_plan, DB)}
    primary = found["backoffice-db-primary"]
    assert primary["identifier"] == "peakready-prod-backoffice"
    assert primary["dbName"] == primary["username"] == "backoffice"
    assert primary["multiAz"] is True and primary["storageEncrypted"] is True
    assert primary["vpcSecurityGroupIds"] == ["sg-backoffice-db-id"]
    assert found["backoffice-db-replica-1"]["replicateSourceDb"] == "peakready-prod-backoffice"


def test_queue_depth_and_age_have_alarms_and_the_dashboard_shows_them(prod_plan, q):
    alarms = {r["inputs"]["name"]: r["inputs"] for r in q.of_type(prod_plan, ALARM)}
    depth = alarms["peakready-prod-QueueBacklog"]
    assert (depth["namespace"], depth["metricName"]) == ("AWS/AmazonMQ", "MessageCount")
    assert depth["dimensions"]["Queue"] == "orders"
    # 3 workers x 400 orders/s x 60 s
    assert depth["threshold"] == 72000
    age = alarms["peakready-prod-QueueAge"]
    assert (age["metricName"], age["period"], age["threshold"]) == ("BacklogAgeSeconds", 10, 60)
    body = json.loads(
        q.one(prod_plan, "aws:cloudwatch/dashboard:Dashboard")["inputs"]["dashboardBody"]
    )
    assert any("queue" in w["properties"]["title"] for w in body["widgets"])


def test_the_storefront_and_the_workers_read_the_queue_password_from_its_secret(prod_plan, q):
    for name in ("app-secrets", "backoffice-workers-secrets"):
        policy = q.one(prod_plan, "aws:iam/rolePolicy:RolePolicy", name)["inputs"]["policy"]
        assert "queue-password" in policy, name


def test_the_policy_pack_refuses_a_single_instance_broker(plan_with):
    plan = plan_with("prod", queue={"deployment": "single-instance"})
    found = [v for v in evaluate(plan) if v.resource.startswith(BROKER)]
    assert [v.message for v in found] == [
        "message broker must span AZs "
        "(deploymentMode: 'SINGLE_INSTANCE', expected CLUSTER_MULTI_AZ)"
    ]


def test_a_stack_without_a_queue_tier_has_no_broker_and_no_back_office(plan_with, q):
    plain = plan_with("dev", queue=None)
    assert plain["error"] is None
    assert q.of_type(plain, BROKER) == []
    assert [r["name"] for r in q.of_type(plain, ASG)] == ["app-asg"]
