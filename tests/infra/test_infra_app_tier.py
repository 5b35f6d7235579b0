import base64
from datetime import UTC, datetime

import yaml

from infra.app_tier import PeakCapacity, image_for, render_user_data, schedule
from peakready.topology import REPO_ROOT, Topology

LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
SCHEDULE = "aws:autoscaling/schedule:Schedule"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_launch_template_requires_imdsv2_encrypts_and_has_no_public_ip(prod_plan, q):
    template = q.one(prod_plan, LT, "app-template")["inputs"]
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert all(m["ebs"]["encrypted"] == "true" for m in template["blockDeviceMappings"])
    (nic,) = template["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "false"
    assert nic["securityGroups"] == ["sg-app-id"]
    assert template["imageId"] == "resolve:ssm:/aws/service/debian/release/bookworm/latest/amd64"


def test_user_data_installs_and_starts_the_storefront_without_secrets(prod_plan, q):
    script = base64.b64decode(q.one(prod_plan, LT, "app-template")["inputs"]["userData"]).decode()
    assert script.startswith("#!/bin/bash")
    assert "ExecStart=/opt/peakready/bin/python -m peakready.app" in script
    assert "systemctl enable --now storefront.service" in script
    assert 'PEAKREADY_APP_SEARCH_BACKEND="opensearch"' in script
    assert 'PEAKREADY_APP_REDIS_URL="rediss://' in script
    assert "target_session_attrs=read-write" in script
    # Secrets are referenced by ARN and fetched at start, never embedded.
    assert '"DB_PASSWORD": "arn:aws:secretsmanager:' in script
    assert "PEAKREADY_APP_DB_PASSWORD=" not in script
    assert "mock-" not in script  # the mock AUTH token value


def test_user_data_and_image_can_be_overridden(plan_with, q):
    plan = plan_with("dev", app={"user_data": "#!/bin/sh\necho custom\n", "ami": "ami-0123"})
    template = q.one(plan, LT, "app-template")["inputs"]
    # Stack settings are whitespace-stripped.
    assert base64.b64decode(template["userData"]).decode() == "#!/bin/sh\necho custom"
    assert template["imageId"] == "ami-0123"


def test_asg_spans_every_az_with_elb_health_checks_and_rebalancing(prod_plan, q):
    group = q.one(prod_plan, ASG, "app-asg")["inputs"]
    zones = q.subnet_zones(prod_plan)
    assert sorted(zones[s] for s in group["vpcZoneIdentifiers"]) == [
        "eu-central-1a",
        "eu-central-1b",
        "eu-central-1c",
    ]
    assert group["healthCheckType"] == "ELB"
    assert group["capacityRebalance"] is True
    assert group["instanceRefresh"]["strategy"] == "Rolling"
    assert (group["minSize"], group["maxSize"]) == (45, 120)
    assert group["name"] == prod_plan["outputs"]["app_group"] == "storefront-prod"


def test_target_tracking_on_requests_per_target(prod_plan, q):
    policy = q.one(prod_plan, "aws:autoscaling/policy:Policy", "app-requests-per-target")["inputs"]
    config = policy["targetTrackingConfiguration"]
    spec = config["predefinedMetricSpecification"]
    assert spec["predefinedMetricType"] == "ALBRequestCountPerTarget"
    assert spec["resourceLabel"].startswith("app/edge-alb/")
    assert "/targetgroup/edge-app/" in spec["resourceLabel"]
    assert config["targetValue"] == Topology.load("prod").app.target_requests_per_target


def test_prewarm_and_release_actions_at_the_right_utc_times(prod_plan, q):
    actions = {
        r["inputs"]["scheduledActionName"]: r["inputs"] for r in q.of_type(prod_plan, SCHEDULE)
    }
    # Singles' Day: 2026-11-11 00:00 Asia/Shanghai = 2026-11-10 16:00 UTC, 90 min pre-warm.
    assert actions["singles-day-prewarm"]["startTime"] == "2026-11-10T14:30:00Z"
    assert actions["singles-day-prewarm"]["minSize"] == 72
    assert actions["singles-day-release"]["startTime"] == "2026-11-11T18:00:00Z"
    assert actions["singles-day-release"]["minSize"] == 45
    # Black Friday: 2026-11-27 00:00 Europe/Berlin = 2026-11-26 23:00 UTC, 120 min pre-warm.
    assert actions["black-friday-prewarm"]["startTime"] == "2026-11-26T21:00:00Z"
    assert actions["black-friday-prewarm"]["minSize"] == 96
    assert actions["black-friday-prewarm"]["desiredCapacity"] == 96
    assert actions["black-friday-release"]["startTime"] == "2026-11-28T05:00:00Z"
    assert actions["black-friday-release"]["desiredCapacity"] == -1
    assert all(a["autoscalingGroupName"] == "storefront-prod" for a in actions.values())


def test_schedule_skips_past_windows_and_raises_min_inside_a_prewarm():
    windows = [
        PeakCapacity("past", _utc("2026-01-01T00:00"), _utc("2026-01-02T00:00"), 10),
        PeakCapacity("now", _utc("2026-06-01T00:00"), _utc("2026-06-03T00:00"), 12),
        PeakCapacity("later", _utc("2026-09-01T00:00"), _utc("2026-09-02T00:00"), 20),
    ]
    current_min, actions = schedule(windows, base_min=4, max_size=30, now=_utc("2026-06-02T00:00"))
    assert current_min == 12
    assert [a.name for a in actions] == ["now-release", "later-prewarm", "later-release"]
    assert actions[1].start_time == "2026-09-01T00:00:00Z"
    assert (actions[1].min_size, actions[1].max_size) == (20, 30)


def _once_only(stack: str) -> list[dict]:
    """The stack's peak windows, made not to recur."""
    document = yaml.safe_load((REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return [
        {k: v for k, v in w.items() if k != "recurs"}
        for w in document["config"]["peakready:peak_windows"]
    ]


def test_no_schedule_once_every_window_is_over(plan_with, q):
    plan = plan_with("prod", now="2026-12-15T00:00:00+00:00", peak_windows=_once_only("prod"))
    assert q.of_type(plan, SCHEDULE) == []
    assert q.one(plan, ASG, "app-asg")["inputs"]["minSize"] == 45


def test_recurring_windows_schedule_next_years_peak_once_this_years_is_over(plan_with, q):
    plan = plan_with("prod", now="2026-12-15T00:00:00+00:00")
    actions = {a["inputs"]["scheduledActionName"]: a["inputs"] for a in q.of_type(plan, SCHEDULE)}
    assert actions["singles-day-prewarm"]["startTime"] == "2027-11-10T14:30:00Z"
    assert actions["black-friday-prewarm"]["startTime"] == "2027-11-25T21:00:00Z"


def test_graviton_instance_types_get_the_arm64_image():
    assert image_for("c7g.large").endswith("/arm64")
    assert image_for("t4g.small").endswith("/arm64")
    assert image_for("c6i.xlarge").endswith("/amd64")
    assert image_for("t3.small").endswith("/amd64")


def test_render_user_data_quotes_the_package():
    script = render_user_data({"PORT": "8000"}, {}, "peakready @ git+https://x/y.git", "eu-west-1")
    assert "pip install -q 'peakready @ git+https://x/y.git'" in script
    assert 'PEAKREADY_APP_PORT="8000"' in script
    assert "region_name='eu-west-1'" in script


def test_the_warm_up_the_lab_scales_is_the_groups_own(plan_with, q):
    group = q.one(plan_with("dev", app={"instance_warmup_s": 90}), ASG, "app-asg")["inputs"]
    assert group["defaultInstanceWarmup"] == 90
    assert group["instanceRefresh"]["preferences"]["instanceWarmup"] == "90"
