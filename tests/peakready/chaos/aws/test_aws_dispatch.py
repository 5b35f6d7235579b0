"""The target-neutral activities reach AWS (moto) through the AWS driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

from peakready.chaos.app import actions as app_actions
from peakready.chaos.app import probes as app_probes
from peakready.chaos.az import actions as az_actions
from peakready.chaos.db import actions as db_actions
from peakready.chaos.stack import actions as stack_actions
from peakready.load.records import read_events

REGION = "eu-central-1"


def _config(world: Any, run_dir: Path, scenario: str) -> dict[str, Any]:
    return {
        **world.configuration,
        "peakready_scenario": scenario,
        "peakready_run_dir": str(run_dir),
    }


def test_az_power_loss_on_aws_runs_fis_and_records_the_fault(world: Any, tmp_path: Path) -> None:
    configuration = _config(world, tmp_path, "az-power-loss")
    fis = boto3.client("fis", region_name=REGION)

    off = az_actions.power_off_az(configuration=configuration)  # default: the primary's AZ

    assert off["az"] == f"{REGION}a"
    assert off["db_primary"] == world.db_primary
    assert "Failover-Database" in off["actions"]
    status = fis.get_experiment(id=off["experiment_id"])["experiment"]["state"]["status"]
    assert status in ("pending", "initiating", "running")

    on = az_actions.power_on_az(configuration=configuration)  # default: the AZ powered off

    assert on["stopped_experiments"] == [off["experiment_id"]]
    events = [(e["type"], e["event"], e.get("az")) for e in read_events(tmp_path)]
    assert events[0] == ("fault", "power_off_az", f"{REGION}a")
    assert ("recovery", "power_on_az", f"{REGION}a") in events


def test_app_instance_loss_on_aws_kills_and_the_group_is_back(world: Any, tmp_path: Path) -> None:
    configuration = _config(world, tmp_path, "app-instance-loss")

    killed = app_actions.kill_app_instance(az=f"{REGION}c", configuration=configuration)

    assert killed["az"] == f"{REGION}c"
    assert app_probes.app_group_at_desired(timeout_s=5, configuration=configuration) is True
    assert stack_actions.restore(configuration=configuration)["healthy"] is True


def test_db_primary_loss_on_aws_records_the_failed_primary(world: Any, tmp_path: Path) -> None:
    configuration = _config(world, tmp_path, "db-primary-loss")

    failed = db_actions.fail_database_primary(configuration=configuration)

    assert failed["id"] == world.db_primary
    assert [(e["event"], e["id"]) for e in read_events(tmp_path)] == [
        ("fail_database_primary", world.db_primary)
    ]
