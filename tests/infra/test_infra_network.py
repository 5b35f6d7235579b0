PROD_AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]


def test_vpc_has_public_app_and_data_subnet_in_every_az(prod_plan, q):
    subnets = q.of_type(prod_plan, "aws:ec2/subnet:Subnet")
    by_tier: dict[str, list[str]] = {}
    for subnet in subnets:
        by_tier.setdefault(subnet["inputs"]["tags"]["peakready:tier"], []).append(
            subnet["inputs"]["availabilityZone"]
        )
    assert {tier: sorted(azs) for tier, azs in by_tier.items()} == {
        "public": PROD_AZS,
        "app": PROD_AZS,
        "data": PROD_AZS,
    }
    cidrs = [s["inputs"]["cidrBlock"] for s in subnets]
    assert len(set(cidrs)) == len(cidrs)
    assert not any(s["inputs"].get("mapPublicIpOnLaunch") for s in subnets)


def test_prod_has_a_nat_gateway_per_az_and_dev_only_one(prod_plan, dev_plan, q):
    zones = q.subnet_zones(prod_plan)
    nats = q.of_type(prod_plan, "aws:ec2/natGateway:NatGateway")
    assert sorted(zones[n["inputs"]["subnetId"]] for n in nats) == PROD_AZS
    assert len(q.of_type(dev_plan, "aws:ec2/natGateway:NatGateway")) == 1


def test_app_subnets_route_out_through_their_own_az_nat(prod_plan, q):
    for az in PROD_AZS:
        table = q.one(prod_plan, "aws:ec2/routeTable:RouteTable", f"net-app-{az}")
        (route,) = table["inputs"]["routes"]
        assert route["cidrBlock"] == "0.0.0.0/0"
        assert route["natGatewayId"] == f"net-nat-{az}-id"


def test_data_subnets_are_isolated(prod_plan, q):
    for az in PROD_AZS:
        table = q.one(prod_plan, "aws:ec2/routeTable:RouteTable", f"net-data-{az}")
        assert not table["inputs"].get("routes")


def test_flow_logs_capture_all_traffic(prod_plan, q):
    flow = q.one(prod_plan, "aws:ec2/flowLog:FlowLog")
    assert flow["inputs"]["trafficType"] == "ALL"
    assert flow["inputs"]["vpcId"] == "net-vpc-id"
    group = q.one(prod_plan, "aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"]["retentionInDays"] == 90
