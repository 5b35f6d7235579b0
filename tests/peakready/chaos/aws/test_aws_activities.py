"""The AWS-only Chaos Toolkit activities, against moto."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from peakready.chaos.aws import actions, probes
from peakready.targets.aws.driver import AwsDriver

AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]


def test_every_activity_is_published_with_a_docstring() -> None:
    for module in (actions, probes):
        for name in module.__all__:
            assert getattr(module, name).__doc__, f"{module.__name__}.{name} has no docstring"


def test_az_power_experiments_lists_this_stacks_experiments(world: Any) -> None:
    started = AwsDriver(world.configuration).power_off_az(AZS[1])

    listed = probes.az_power_experiments(configuration=world.configuration)

    assert [(e["id"], e["az"]) for e in listed] == [(started["experiment_id"], AZS[1])]
    assert listed[0]["status"] in ("pending", "initiating", "running")


def test_stop_az_power_experiments_only_stops_the_given_zone(world: Any) -> None:
    driver = AwsDriver(world.configuration)
    first = driver.power_off_az(AZS[0])
    second = driver.power_off_az(AZS[1])

    stopped = actions.stop_az_power_experiments(az=AZS[0], configuration=world.configuration)

    assert stopped == [first["experiment_id"]]
    status = {e["id"]: e["status"] for e in driver.fault_experiments()}
    assert status[first["experiment_id"]] == "stopped"
    assert status[second["experiment_id"]] != "stopped"


def test_stop_az_power_experiments_refuses_an_unknown_zone(world: Any) -> None:
    with pytest.raises(ActivityFailed, match=r"az: 'eu-west-1a' is not one of the stack's zones"):
        actions.stop_az_power_experiments(az="eu-west-1a", configuration=world.configuration)


def test_app_targets_health_counts_targets_per_state(world: Any) -> None:
    health = probes.app_targets_health(configuration=world.configuration)

    assert list(health.values()) == [{"healthy": 3}]
