DB = "aws:rds/instance:Instance"


def _instances(plan, q):
    found = {r["name"]: r for r in q.of_type(plan, DB) if r["name"].startswith("db-")}
    return found["db-primary"], [found[n] for n in sorted(found) if "replica" in n]


def test_primary_is_multi_az_encrypted_with_managed_password_and_pitr(prod_plan, q):
    primary, _ = _instances(prod_plan, q)
    p = primary["inputs"]
    assert p["multiAz"] is True
    assert p["storageEncrypted"] is True
    assert p["manageMasterUserPassword"] is True
    assert "password" not in p
    assert p["backupRetentionPeriod"] == 14
    assert p["performanceInsightsEnabled"] is True
    assert p["publiclyAccessible"] is False
    assert p["engine"] == "postgres"
    assert p["tags"]["peakready:backup"] == "true"


def test_replicas_are_placed_in_the_other_azs(prod_plan, q):
    _, replicas = _instances(prod_plan, q)
    assert [r["inputs"]["availabilityZone"] for r in replicas] == ["eu-central-1b", "eu-central-1c"]
    assert all(r["inputs"]["replicateSourceDb"] == "peakready-prod" for r in replicas)
    assert prod_plan["outputs"]["db_replicas"] == [
        "peakready-prod-replica-1",
        "peakready-prod-replica-2",
    ]


def test_deletion_protection_on_protected_stack_only(prod_plan, dev_plan, q):
    prod_primary, _ = _instances(prod_plan, q)
    dev_primary, _ = _instances(dev_plan, q)
    assert prod_primary["inputs"]["deletionProtection"] is True
    assert prod_primary["protect"] is True
    assert dev_primary["inputs"]["deletionProtection"] is False
    assert dev_primary["inputs"]["skipFinalSnapshot"] is True


def test_parameter_group_forces_tls(prod_plan, q):
    group = q.one(prod_plan, "aws:rds/parameterGroup:ParameterGroup", "db-params")["inputs"]
    assert group["family"] == "postgres15"
    assert ("rds.force_ssl", "1") in {(p["name"], p["value"]) for p in group["parameters"]}


def test_multi_az_db_cluster_by_choice(plan_with, q):
    plan = plan_with(
        "dev", database={"deployment": "multi-az-cluster", "instance_class": "db.m6gd.large"}
    )
    assert plan["error"] is None
    # The shop's database is the cluster; only the back office's stays an instance.
    assert [r["name"] for r in q.of_type(plan, DB)] == [
        "backoffice-db-primary",
        "backoffice-db-replica-1",
    ]
    cluster = q.one(plan, "aws:rds/cluster:Cluster")["inputs"]
    assert cluster["availabilityZones"] == ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
    assert cluster["dbClusterInstanceClass"] == "db.m6gd.large"
    assert cluster["storageEncrypted"] is True
    assert cluster["manageMasterUserPassword"] is True
    assert plan["outputs"]["db_primary"] == "peakready-dev"
