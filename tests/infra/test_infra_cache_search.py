import json

REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
DOMAIN = "aws:opensearch/domain:Domain"


def test_redis_is_multi_az_with_failover_and_encryption(prod_plan, q):
    group = q.one(prod_plan, REDIS)["inputs"]
    assert group["multiAzEnabled"] is True
    assert group["automaticFailoverEnabled"] is True
    assert group["numCacheClusters"] == 3
    assert group["preferredCacheClusterAzs"] == ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
    assert group["atRestEncryptionEnabled"] is True
    assert group["transitEncryptionEnabled"] is True
    assert group["snapshotRetentionLimit"] == 7
    assert group["securityGroupIds"] == ["sg-cache-id"]


def test_redis_auth_token_is_a_secret_and_never_in_the_plan(prod_plan, q):
    assert q.one(prod_plan, REDIS)["inputs"]["authToken"] == "[secret]"
    version = q.one(prod_plan, "aws:secretsmanager/secretVersion:SecretVersion", "cache-auth-token")
    assert version["inputs"]["secretString"] == "[secret]"
    assert "mock-" not in json.dumps(prod_plan)


def test_opensearch_zone_awareness_over_three_azs_with_dedicated_masters(prod_plan, q):
    domain = q.one(prod_plan, DOMAIN)["inputs"]
    cluster = domain["clusterConfig"]
    assert cluster["zoneAwarenessEnabled"] is True
    assert cluster["zoneAwarenessConfig"]["availabilityZoneCount"] == 3
    assert cluster["instanceCount"] == 6
    assert cluster["dedicatedMasterEnabled"] is True
    assert cluster["dedicatedMasterCount"] == 3
    zones = q.subnet_zones(prod_plan)
    assert sorted(zones[s] for s in domain["vpcOptions"]["subnetIds"]) == [
        "eu-central-1a",
        "eu-central-1b",
        "eu-central-1c",
    ]


def test_opensearch_encrypts_and_enforces_https(prod_plan, q):
    domain = q.one(prod_plan, DOMAIN)["inputs"]
    assert domain["encryptAtRest"]["enabled"] is True
    assert domain["nodeToNodeEncryption"]["enabled"] is True
    assert domain["domainEndpointOptions"]["enforceHttps"] is True
    policy = json.loads(domain["accessPolicies"])
    assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
