"""The peak rehearsals' actions that wait on the target, against a fake driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from peakready.chaos import shared
from peakready.chaos.peak import actions
from peakready.load.records import read_events


class ScalingGroup:
    """An app group whose scale-out to ``desired`` comes into service after ``polls``."""

    def __init__(self, polls: int, desired: int = 6, healthy: int = 5) -> None:
        self.polls, self.desired, self.healthy = polls, desired, healthy

    def app_group_at_desired(self) -> dict[str, Any]:
        if self.polls <= 0:
            self.healthy = self.desired
        self.polls -= 1
        return {
            "desired": self.desired,
            "healthy": self.healthy,
            "ok": self.healthy >= self.desired,
        }


@pytest.fixture
def configuration(tmp_path: Path) -> dict[str, Any]:
    return {"peakready_run_dir": str(tmp_path), "peakready_scenario": "az-loss-at-peak"}


def _use(monkeypatch: pytest.MonkeyPatch, group: ScalingGroup) -> None:
    monkeypatch.setattr(shared, "driver", lambda configuration, secrets=None: group)


def test_the_fault_waits_for_a_scale_out_under_way(
    monkeypatch: pytest.MonkeyPatch, configuration: dict[str, Any], tmp_path: Path
) -> None:
    _use(monkeypatch, ScalingGroup(polls=2))
    result = actions.wait_for_group_at_desired(timeout_s=10, configuration=configuration)
    assert result["ok"] and result["healthy"] == 6
    assert 0.9 <= result["waited_s"] < 10
    [event] = [e for e in read_events(tmp_path) if e["event"] == "group_at_desired"]
    assert event["type"] == "info"  # not a fault: the fault's time is the power-off's


def test_a_group_that_never_gets_there_is_waited_for_no_longer_than_the_bound(
    monkeypatch: pytest.MonkeyPatch, configuration: dict[str, Any]
) -> None:
    _use(monkeypatch, ScalingGroup(polls=10**6))
    result = actions.wait_for_group_at_desired(timeout_s=1, configuration=configuration)
    assert not result["ok"] and result["healthy"] == 5
    assert 1 <= result["waited_s"] < 3


@pytest.mark.parametrize("timeout_s", [-1, 121])
def test_a_bound_out_of_range_is_one_line(
    monkeypatch: pytest.MonkeyPatch, configuration: dict[str, Any], timeout_s: float
) -> None:
    _use(monkeypatch, ScalingGroup(polls=0))
    with pytest.raises(ActivityFailed, match=r"timeout_s .*: expected 0 to 120"):
        actions.wait_for_group_at_desired(timeout_s=timeout_s, configuration=configuration)
