INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def _rules(plan, kind):
    return [r["inputs"] for r in plan["resources"] if r["type"] == kind]


def test_only_the_alb_is_open_to_the_internet_and_only_on_80_and_443(prod_plan):
    open_rules = [r for r in _rules(prod_plan, INGRESS) if r.get("cidrIpv4") or r.get("cidrIpv6")]
    assert sorted((r["securityGroupId"], r["fromPort"], r["toPort"]) for r in open_rules) == [
        ("sg-alb-id", 80, 80),
        ("sg-alb-id", 443, 443),
    ]
    assert all(r["cidrIpv4"] == "0.0.0.0/0" for r in open_rules)


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
    }


def test_data_tiers_have_no_egress_and_alb_egress_only_to_the_app(prod_plan):
    egress = _rules(prod_plan, EGRESS)
    sources = {r["securityGroupId"] for r in egress}
    assert sources == {"sg-alb-id", "sg-app-id"}
    alb = [r for r in egress if r["securityGroupId"] == "sg-alb-id"]
    assert [(r["referencedSecurityGroupId"], r["fromPort"]) for r in alb] == [("sg-app-id", 8000)]


def test_security_groups_declare_no_inline_rules(prod_plan, q):
    for group in q.of_type(prod_plan, "aws:ec2/securityGroup:SecurityGroup"):
        assert not group["inputs"].get("ingress")
        assert not group["inputs"].get("egress")
