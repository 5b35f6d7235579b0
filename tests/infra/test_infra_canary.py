"""The synthetic checkout on AWS: a Synthetics canary, its alarm, its token."""

import base64
import json

CANARY = "aws:synthetics/canary:Canary"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def test_the_canary_walks_the_checkout_every_minute_through_the_alb(prod_plan, q):
    canary = q.one(prod_plan, CANARY)["inputs"]
    assert canary["name"] == "prod-checkout"
    assert canary["schedule"]["expression"] == "rate(1 minute)"
    assert canary["startCanary"] is True
    assert canary["handler"] == "checkout.handler"
    env = canary["runConfig"]["environmentVariables"]
    assert env["ENDPOINT"] == prod_plan["outputs"]["endpoint"]
    # The token is read at run time from its secret, never in the canary's configuration.
    assert env["TOKEN_SECRET_ARN"].endswith(":Secret/checkout-audit-token")
    assert set(env) == {"ENDPOINT", "TOKEN_SECRET_ARN"}
    code = q.one(prod_plan, "aws:s3/bucketObjectv2:BucketObjectv2", "checkout-code")["inputs"]
    assert list(code["source"]["archive"]) == ["nodejs/node_modules/checkout.js"]


def test_the_canary_script_places_a_flagged_order_of_the_synthetic_product_and_reads_it():
    from infra.canary import SCRIPT, SYNTHETIC_PRODUCT_ID
    from peakready.app.db import SYNTHETIC_PRODUCT_ID as STOREFRONTS

    assert SYNTHETIC_PRODUCT_ID == STOREFRONTS
    assert f"product_id: {STOREFRONTS}" in SCRIPT
    assert "'X-Peakready-Synthetic': answer.SecretString" in SCRIPT
    assert "method: 'POST', path: '/orders'" in SCRIPT and "path: '/orders/' + order.id" in SCRIPT


def test_the_canarys_role_reads_only_its_token_and_writes_only_its_bucket(prod_plan, q):
    policy = json.loads(
        q.one(prod_plan, "aws:iam/rolePolicy:RolePolicy", "checkout-policy")["inputs"]["policy"]
    )
    by_action = {
        a: s
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert by_action["secretsmanager:GetSecretValue"]["Resource"] != "*"
    assert by_action["s3:PutObject"]["Resource"].endswith("/*")
    assert by_action["cloudwatch:PutMetricData"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "CloudWatchSynthetics"}
    }
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])


def test_a_failing_or_silent_canary_raises_the_checkout_probe_alarm(prod_plan, q):
    (alarm,) = [
        a["inputs"]
        for a in q.of_type(prod_plan, ALARM)
        if a["inputs"]["name"] == "peakready-prod-CheckoutProbe"
    ]
    assert (alarm["namespace"], alarm["metricName"]) == ("CloudWatchSynthetics", "SuccessPercent")
    assert alarm["dimensions"] == {"CanaryName": "prod-checkout"}
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", 100)
    assert alarm["treatMissingData"] == "breaching"


def test_the_storefront_instances_get_the_same_token_as_the_canary(prod_plan, q):
    policy = q.one(prod_plan, "aws:iam/rolePolicy:RolePolicy", "checkout-policy")["inputs"]
    (token_arn,) = [
        s["Resource"]
        for s in json.loads(policy["policy"])["Statement"]
        if s["Action"] == "secretsmanager:GetSecretValue"
    ]
    template = q.one(prod_plan, "aws:ec2/launchTemplate:LaunchTemplate", "app-template")
    user_data = base64.b64decode(template["inputs"]["userData"]).decode()
    assert f'"AUDIT_TOKEN": "{token_arn}"' in user_data
