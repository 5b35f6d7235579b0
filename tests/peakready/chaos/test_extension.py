"""The extension as Chaos Toolkit sees it: discovery, experiments, configuration."""

import importlib
import inspect
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.loader import load_experiment

import peakready.chaos as extension
from peakready.chaos import shared
from peakready.topology import REPO_ROOT, SCENARIOS

EXPERIMENTS = sorted((REPO_ROOT / "chaos").glob("*.yaml"))


def test_discover_lists_every_activity_of_every_tier() -> None:
    discovered = extension.discover()
    names = {(a["type"], a["name"]) for a in discovered["activities"]}
    for action in (
        "kill_app_instance",
        "power_off_az",
        "power_on_az",
        "fail_database_primary",
        "fail_cache_primary",
        "stop_cache",
        "kill_search_node",
        "stop_search",
        "restore",
    ):
        assert ("action", action) in names
    for probe in ("stale_primary_rejects_writes", "ledger_consistent", "wait_for_recovery"):
        assert ("probe", probe) in names
    # AWS-only activities of peakready.chaos.aws are published too.
    assert ("action", "stop_az_power_experiments") in names
    assert ("probe", "app_targets_health") in names


def test_chaos_discover_finds_the_package_root() -> None:
    import peakready

    assert peakready.discover()["activities"] == extension.discover()["activities"]


@pytest.mark.parametrize(
    "module",
    [
        f"peakready.chaos.{tier}.{kind}"
        for tier, kind in [(t, "actions") for t in extension.ACTIONS]
        + [(t, "probes") for t in extension.PROBES]
    ],
)
def test_all_lists_exactly_the_activities_with_configuration_and_secrets_last(module) -> None:
    mod = importlib.import_module(module)
    public = {
        name
        for name, fn in inspect.getmembers(mod, inspect.isfunction)
        if fn.__module__ == module and not name.startswith("_")
    }
    assert set(mod.__all__) == public
    for name in mod.__all__:
        params = list(inspect.signature(getattr(mod, name)).parameters)
        assert params[-2:] == ["configuration", "secrets"], name
        assert getattr(mod, name).__doc__, name


def test_there_is_one_experiment_per_fault_scenario() -> None:
    assert {p.stem for p in EXPERIMENTS} == set(SCENARIOS) - {"backup-restore"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_is_valid_with_load_and_rollback(path: Path) -> None:
    experiment = load_experiment(str(path))
    ensure_experiment_is_valid(experiment)
    assert experiment["configuration"]["peakready_scenario"] == path.stem
    assert experiment["configuration"]["peakready_target"]["default"] == "lab"
    assert [c["provider"]["module"] for c in experiment["controls"]] == [
        "peakready.chaos.load.control"
    ]
    # every scenario ends on restore; a flash sale gives its product its stock back first
    assert [r["provider"]["func"] for r in experiment["rollbacks"]][-1:] == ["restore"]
    assert experiment["runtime"]["rollbacks"]["strategy"] == "always"  # also on Ctrl-C
    assert experiment["method"][0]["type"] == "action"


def test_unknown_target_or_scenario_is_refused_by_name() -> None:
    with pytest.raises(ActivityFailed, match="peakready_target 'gcp'"):
        shared.target_of({"peakready_target": "gcp"})
    with pytest.raises(ActivityFailed, match="peakready_scenario 'nope'"):
        shared.scenario_of({"peakready_scenario": "nope"})


def test_run_dir_defaults_per_scenario(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path))
    assert shared.run_dir({"peakready_scenario": "db-primary-loss"}) == (
        tmp_path / "runs" / "db-primary-loss"
    )
    assert shared.run_dir({"peakready_run_dir": "/x/y"}) == Path("/x/y")


def test_rto_limit_is_the_policy_tightened_by_the_lab_target() -> None:
    lab = {"peakready_target": "lab", "peakready_stack": "dev"}
    aws = {"peakready_target": "aws", "peakready_stack": "dev"}
    assert shared.rto_limit(lab, "db-primary-loss") == 25
    assert shared.rto_limit(aws, "app-instance-loss") == 10


def test_the_aws_target_dispatches_to_the_aws_driver() -> None:
    driver = shared.driver({"peakready_target": "aws", "peakready_stack": "staging"})
    assert driver.target == "aws"
    assert type(driver).__module__ == "peakready.targets.aws.driver"


def test_the_audit_token_comes_from_secrets_then_environment(monkeypatch) -> None:
    from peakready.chaos.verify.shared import audit_token

    aws = {"peakready_target": "aws"}
    monkeypatch.delenv("PEAKREADY_AUDIT_TOKEN", raising=False)
    with pytest.raises(ActivityFailed, match="set the secret peakready_audit_token"):
        audit_token(aws, None)
    monkeypatch.setenv("PEAKREADY_AUDIT_TOKEN", "from-env")
    assert audit_token(aws, None) == "from-env"
    assert audit_token(aws, {"peakready_audit_token": "from-secret"}) == "from-secret"
