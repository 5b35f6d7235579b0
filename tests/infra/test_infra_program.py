import pulumi
import pytest

from infra.security import SecurityChain, SecurityChainArgs
from peakready.topology import OUTPUT_KEYS, QUEUE_OUTPUT_KEYS

DESIGN_OUTPUTS = set(OUTPUT_KEYS)


def test_outputs_are_exactly_design_section_3(prod_plan, dev_plan, plan_with):
    # a stack with a queue tier names the broker and the back office too
    assert set(prod_plan["outputs"]) == DESIGN_OUTPUTS | set(QUEUE_OUTPUT_KEYS)
    assert set(dev_plan["outputs"]) == DESIGN_OUTPUTS | set(QUEUE_OUTPUT_KEYS)
    assert set(plan_with("dev", queue=None)["outputs"]) == DESIGN_OUTPUTS
    assert prod_plan["outputs"]["queue_broker"]
    assert prod_plan["outputs"]["backoffice_group"] == "backoffice-prod"
    assert prod_plan["outputs"]["backoffice_endpoint"].startswith("http://")
    assert prod_plan["outputs"]["target"] == "aws"
    assert prod_plan["outputs"]["stack"] == "prod"
    assert prod_plan["outputs"]["availability_zones"] == [
        "eu-central-1a",
        "eu-central-1b",
        "eu-central-1c",
    ]
    assert prod_plan["outputs"]["endpoint"].startswith("https://")


def test_every_child_has_a_component_parent(prod_plan):
    components = {r["key"] for r in prod_plan["resources"] if r["type"].startswith("peakready:")}
    # 10, the queue, the back office, its database and workers, the checkout canary
    assert len(components) == 15
    for resource in prod_plan["resources"]:
        if not resource["type"].startswith("peakready:"):
            assert resource["parent"] in components, resource["key"]


def test_protected_stack_that_is_not_statically_stable_is_refused(plan_with):
    windows = [
        {
            "name": "black-friday",
            "start": "2026-11-27T00:00",
            "end": "2026-11-28T06:00",
            "timezone": "Europe/Berlin",
            "requests_per_s": 12000,
            "app_min_capacity": 66,
        }
    ]
    plan = plan_with("prod", peak_windows=windows)
    assert plan["error"] is not None
    assert "protected and not statically stable" in plan["error"]
    assert any(
        d["level"] == "error" and "app: window black-friday: short by" in d["message"]
        for d in plan["diagnostics"]
    )


def test_unprotected_unstable_stack_deploys_with_a_warning(plan_with):
    plan = plan_with("dev", app={"requests_per_instance": 150, "min_size": 3, "max_size": 4})
    assert plan["error"] is None
    assert any(
        d["level"] == "warning" and "app: forecast peak" in d["message"]
        for d in plan["diagnostics"]
    )


def test_region_mismatch_is_refused(tmp_path, plan_with):
    plan = plan_with("dev", region="eu-west-1")
    assert "aws:region eu-central-1 differs from peakready:region eu-west-1" in plan["error"]


@pytest.fixture
def mocks():
    from peakready.preview.runner import _load_mocks

    mocks_class, _ = _load_mocks()
    pulumi.runtime.set_mocks(mocks_class(), project="peakready", stack="unit", preview=False)


@pulumi.runtime.test
def test_security_chain_component_exposes_one_group_per_hop(mocks):
    chain = SecurityChain("unit", SecurityChainArgs(vpc_id="vpc-1"))

    def check(ids):
        assert ids == [
            "unit-alb-id",
            "unit-app-id",
            "unit-db-id",
            "unit-cache-id",
            "unit-search-id",
        ]

    return pulumi.Output.all(
        chain.alb_sg_id, chain.app_sg_id, chain.db_sg_id, chain.cache_sg_id, chain.search_sg_id
    ).apply(check)
