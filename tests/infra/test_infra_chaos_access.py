import json

ROLE = "aws:iam/role:Role"


def test_fis_role_is_named_for_the_stack_and_only_fis_assumes_it(prod_plan, q):
    role = q.one(prod_plan, ROLE, "chaos-fis-role")["inputs"]
    assert role["name"] == "peakready-prod-fis"
    trust = json.loads(role["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "fis.amazonaws.com"}]


def test_fis_role_gets_the_power_interruption_permissions(prod_plan, q):
    attached = {
        r["inputs"]["policyArn"].rsplit("/", 1)[1]
        for r in q.of_type(prod_plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r["parent"].endswith("chaos")
    }
    assert attached == {
        "AWSFaultInjectionSimulatorEC2Access",
        "AWSFaultInjectionSimulatorNetworkAccess",
        "AWSFaultInjectionSimulatorRDSAccess",
    }
    inline = json.loads(
        q.one(prod_plan, "aws:iam/rolePolicy:RolePolicy", "chaos-elasticache")["inputs"]["policy"]
    )
    interrupt = inline["Statement"][0]
    assert interrupt["Action"] == "elasticache:InterruptClusterAzPower"
    assert interrupt["Condition"] == {"StringEquals": {"aws:ResourceTag/peakready:stack": "prod"}}


def test_backup_role_is_named_for_the_stack(prod_plan, q):
    assert q.one(prod_plan, ROLE, "backup-role")["inputs"]["name"] == "peakready-prod-backup"
