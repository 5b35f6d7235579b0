"""A scenario's steady state starts once the alerts of the one before have settled."""

from __future__ import annotations

from typing import Any

import pytest

from peakready.drill import runner


class Target:
    """A driver whose rules stay pending or firing for ``rounds`` polls."""

    def __init__(self, rounds: int | None) -> None:
        self.rounds, self.asked = rounds, 0

    def unsettled_alerts(self) -> list[str] | None:
        self.asked += 1
        if self.rounds is None:
            return ["OrderLatency"]  # never settles
        return ["OrderLatency"] if self.asked <= self.rounds else []


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(rounds: int | None) -> Target:
        found = Target(rounds)
        monkeypatch.setattr(runner.shared, "driver", lambda configuration: found)
        return found

    return make


def test_the_runner_waits_until_a_pending_alert_of_the_scenario_before_settles(target: Any) -> None:
    said: list[str] = []
    found = target(3)
    assert runner.settle({}, timeout_s=5, say=said.append, poll_s=0.01) == []
    assert found.asked == 4
    assert said == ["waiting for OrderLatency to settle"] * 3


def test_an_alert_that_never_settles_is_left_to_the_noise_check_after_the_deadline(
    target: Any,
) -> None:
    target(None)
    assert runner.settle({}, timeout_s=0.05, say=lambda _: None, poll_s=0.01) == ["OrderLatency"]


def test_a_quiet_target_is_not_waited_for(target: Any) -> None:
    found = target(0)
    assert runner.settle({}, timeout_s=5, say=lambda _: None) == []
    assert found.asked == 1
