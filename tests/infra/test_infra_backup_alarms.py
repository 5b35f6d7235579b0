PLAN = "aws:backup/plan:Plan"
VAULT = "aws:backup/vault:Vault"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def test_backups_are_copied_to_a_second_region(prod_plan, q):
    vaults = {r["name"]: r["inputs"] for r in q.of_type(prod_plan, VAULT)}
    assert vaults["backup-copy-vault"]["region"] == "eu-west-1"
    assert "region" not in vaults["backup-vault"]
    plan = q.one(prod_plan, PLAN)["inputs"]
    assert {r["ruleName"] for r in plan["rules"]} == {"weekly-full", "daily"}
    for rule in plan["rules"]:
        assert rule["lifecycle"]["deleteAfter"] == 35
        (copy,) = rule["copyActions"]
        assert copy["destinationVaultArn"].endswith("/backup-copy-vault")
    assert prod_plan["outputs"]["backup_vault"] == "peakready-prod"


def test_backup_selection_is_by_tag(prod_plan, q):
    selection = q.one(prod_plan, "aws:backup/selection:Selection")["inputs"]
    assert selection["selectionTags"] == [
        {"key": "peakready:backup", "type": "STRINGEQUALS", "value": "true"}
    ]


def test_dev_has_no_copy_region(dev_plan, q):
    assert len(q.of_type(dev_plan, VAULT)) == 1
    assert all(not r.get("copyActions") for r in q.one(dev_plan, PLAN)["inputs"]["rules"])


def test_alarms_that_matter_at_peak_notify_the_topic(prod_plan, q):
    alarms = [r["inputs"] for r in q.of_type(prod_plan, ALARM)]
    metrics = {a["metricName"] for a in alarms}
    assert {
        "HTTPCode_ELB_5XX_Count",
        "UnHealthyHostCount",
        "ReplicaLag",
        "CPUUtilization",
        "FreeStorageSpace",
        "ReplicationLag",
        "Evictions",
        "ClusterStatus.red",
    } <= metrics
    topic = q.one(prod_plan, "aws:sns/topic:Topic")
    assert all(
        a["alarmActions"] == [f"arn:aws:mock:eu-central-1:123456789012:Topic/{topic['name']}"]
        for a in alarms
    )
    lag = [a for a in alarms if a["metricName"] == "ReplicaLag"]
    assert sorted(a["dimensions"]["DBInstanceIdentifier"] for a in lag) == [
        "peakready-prod-replica-1",
        "peakready-prod-replica-2",
    ]
    assert all(a["threshold"] == 10 for a in lag)
