LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"


def test_alb_is_in_every_az_with_access_logs(prod_plan, q):
    alb = q.one(prod_plan, LB, "edge-alb")["inputs"]
    zones = q.subnet_zones(prod_plan)
    assert sorted(zones[s] for s in alb["subnets"]) == [
        "eu-central-1a",
        "eu-central-1b",
        "eu-central-1c",
    ]
    assert alb["internal"] is False
    assert alb["accessLogs"]["enabled"] is True
    assert alb["securityGroups"] == ["sg-alb-id"]


def test_https_listener_and_http_redirect_when_a_certificate_is_set(prod_plan, q):
    listeners = {
        r["inputs"]["port"]: r["inputs"]
        for r in q.of_type(prod_plan, LISTENER)
        if r["name"].startswith("edge-")
    }
    assert listeners[443]["protocol"] == "HTTPS"
    assert listeners[443]["certificateArn"].startswith("arn:aws:acm:")
    assert listeners[443]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert listeners[443]["defaultActions"][0]["type"] == "forward"
    redirect = listeners[80]["defaultActions"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}


def test_plain_http_forward_without_a_certificate(dev_plan, q):
    (listener,) = [r for r in q.of_type(dev_plan, LISTENER) if r["name"].startswith("edge-")]
    assert listener["inputs"]["port"] == 80
    assert listener["inputs"]["defaultActions"][0]["type"] == "forward"
    assert dev_plan["outputs"]["endpoint"].startswith("http://")


def test_target_group_checks_readiness_fast_and_drains_fast(prod_plan, q):
    group = q.one(prod_plan, "aws:lb/targetGroup:TargetGroup", "edge-app")["inputs"]
    assert group["healthCheck"]["path"] == "/readyz"
    assert group["healthCheck"]["interval"] == 5
    assert group["healthCheck"]["unhealthyThreshold"] == 2
    assert group["deregistrationDelay"] == 10


def test_deletion_protection_only_on_the_protected_stack(prod_plan, dev_plan, q):
    assert q.one(prod_plan, LB, "edge-alb")["inputs"]["enableDeletionProtection"] is True
    assert q.one(dev_plan, LB, "edge-alb")["inputs"]["enableDeletionProtection"] is False


def test_access_log_bucket_blocks_public_access(prod_plan, q):
    kind = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    block = q.one(prod_plan, kind, "edge-access-logs")["inputs"]
    assert all(
        block[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )


def test_a_waf_rate_rule_per_client_ip_fronts_the_alb(prod_plan, q):
    acl = q.one(prod_plan, "aws:wafv2/webAcl:WebAcl")["inputs"]
    assert acl["scope"] == "REGIONAL"
    assert "allow" in acl["defaultAction"]
    (rule,) = acl["rules"]
    rate = rule["statement"]["rateBasedStatement"]
    assert (rate["aggregateKeyType"], rate["limit"]) == ("IP", 6000)
    response = rule["action"]["block"]["customResponse"]
    assert response["responseCode"] == 429
    assert response["responseHeaders"] == [{"name": "Retry-After", "value": "60"}]
    association = q.one(prod_plan, "aws:wafv2/webAclAssociation:WebAclAssociation")["inputs"]
    assert "alb" in association["resourceArn"]
