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
    metrics = {a.get("metricName") for a in alarms}
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
    lag = [a for a in alarms if a.get("metricName") == "ReplicaLag"]
    assert sorted(a["dimensions"]["DBInstanceIdentifier"] for a in lag) == [
        "peakready-prod-replica-1",
        "peakready-prod-replica-2",
    ]
    assert all(a["threshold"] == 10 for a in lag)


def test_every_cloudwatch_alarm_has_its_prometheus_twin_and_the_reverse(prod_plan, q):
    from peakready.monitoring.alerts import catalogue, prometheus_rules
    from peakready.topology import Topology

    topology = Topology.load("prod")
    alarms = [r["inputs"] for r in q.of_type(prod_plan, ALARM)]
    rendered = {a["tags"]["peakready:alert"] for a in alarms}
    (group,) = prometheus_rules(topology)["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    assert rendered == set(rules)
    for alert in catalogue(topology):
        twins = [a for a in alarms if a["tags"]["peakready:alert"] == alert.name]
        assert all(a["name"].startswith(f"peakready-prod-{alert.name}") for a in twins)
        # the same condition, held as long: CloudWatch's periods cover the rule's `for`
        assert all(_period(a) * a["evaluationPeriods"] >= alert.for_s for a in twins)
        assert rules[alert.name]["for"] == f"{alert.for_s:g}s"
        assert all(a["comparisonOperator"] == alert.cloudwatch.comparison for a in twins)


def _period(alarm: dict) -> int:
    """An alarm's period: its metric's, or its one query's."""
    return alarm.get("period") or alarm["metricQueries"][0]["period"]


def test_a_lost_broker_node_is_counted_by_a_metrics_insights_query(prod_plan, q):
    """Amazon MQ's per-node metrics carry node names the stack cannot know: the alarm
    counts the nodes of the broker still reporting, fewer than its three is an alarm,
    and so is none at all."""
    (alarm,) = [
        r["inputs"]
        for r in q.of_type(prod_plan, ALARM)
        if r["inputs"]["tags"]["peakready:alert"] == "QueueNodeLost"
    ]
    (query,) = alarm["metricQueries"]
    assert query["expression"] == (
        'SELECT COUNT(SystemCpuUtilization) FROM SCHEMA("AWS/AmazonMQ", Broker, Node) '
        "WHERE Broker = 'peakready-prod'"
    )
    assert (query["period"], query["returnData"]) == (60, True)
    assert "metricName" not in alarm and "namespace" not in alarm
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", 3)
    assert alarm["treatMissingData"] == "breaching"


def test_custom_storefront_metrics_alarm_at_10_s_periods(prod_plan, q):
    alarms = [r["inputs"] for r in q.of_type(prod_plan, ALARM)]
    custom = [a for a in alarms if a.get("namespace") == "peakready/Storefront"]
    assert {a["metricName"] for a in custom} >= {"OrderErrorRatio", "OrderLatency"}
    assert all(a["period"] == 10 and a["dimensions"] == {"Stack": "prod"} for a in custom)
    (latency,) = [a for a in custom if a["metricName"] == "OrderLatency"]
    assert latency["extendedStatistic"] == "p99" and "statistic" not in latency


def test_a_dashboard_shows_the_peak_signals(prod_plan, q):
    import json

    dashboard = q.one(prod_plan, "aws:cloudwatch/dashboard:Dashboard")["inputs"]
    assert dashboard["dashboardName"] == "peakready-prod"
    body = json.loads(dashboard["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert "order latency p99 (ms)" in titles and "orders per minute" in titles
    assert all(w["properties"]["region"] == "eu-central-1" for w in body["widgets"])
