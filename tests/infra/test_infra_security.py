INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SG = "aws:ec2/securityGroup:SecurityGroup"


def _rules(plan, kind):
    return [r["inputs"] for r in plan["resources"] if r["type"] == kind]


def test_only_the_alb_is_open_to_the_internet_and_only_on_80_and_443(prod_plan):
    open_rules = [r for r in _rules(prod_plan, INGRESS) if r.get("cidrIpv4") or r.get("cidrIpv6")]
    assert sorted(
        (r["securityGroupId"], r["fromPort"], r["toPort"], r["cidrIpv4"]) for r in open_rules
    ) == [
        ("sg-alb-id", 80, 80, "0.0.0.0/0"),
        ("sg-alb-id", 443, 443, "0.0.0.0/0"),
        # the back office's order API: from inside the VPC only
        ("sg-backoffice-alb-id", 80, 80, "10.42.0.0/16"),
    ]


def test_each_hop_accepts_only_the_hop_before_it(prod_plan):
    chained = {
        (r["securityGroupId"], r["referencedSecurityGroupId"], r["fromPort"])
        for r in _rules(prod_plan, INGRESS)
        if r.get("referencedSecurityGroupId")
    }
    assert chained == {
        ("sg-app-id", "sg-alb-id", 8000),
        ("sg-db-id", "sg-app-id", 5432),
        ("sg-cache-id", "sg-app-id", 6379),
        ("sg-search-id", "sg-app-id", 443),
        # the order pipeline: app → queue ← workers → their own database
        ("sg-queue-id", "sg-app-id", 5671),
        ("sg-queue-id", "sg-worker-id", 5671),
        ("sg-backoffice-db-id", "sg-worker-id", 5432),
        ("sg-worker-id", "sg-backoffice-alb-id", 8001),
    }


def test_without_a_queue_tier_there_is_no_pipeline_hop(plan_with):
    plain = plan_with("dev", queue=None)
    groups = {r["name"] for r in plain["resources"] if r["type"] == SG}
    assert groups == {"sg-alb", "sg-app", "sg-db", "sg-cache", "sg-search"}


def test_data_tiers_have_no_egress_and_alb_egress_only_to_the_app(prod_plan):
    egress = _rules(prod_plan, EGRESS)
    sources = {r["securityGroupId"] for r in egress}
    assert sources == {"sg-alb-id", "sg-app-id", "sg-worker-id", "sg-backoffice-alb-id"}
    alb = [r for r in egress if r["securityGroupId"] == "sg-alb-id"]
    assert [(r["referencedSecurityGroupId"], r["fromPort"]) for r in alb] == [("sg-app-id", 8000)]


def test_security_groups_declare_no_inline_rules(prod_plan, q):
    for group in q.of_type(prod_plan, "aws:ec2/securityGroup:SecurityGroup"):
        assert not group["inputs"].get("ingress")
        assert not group["inputs"].get("egress")
