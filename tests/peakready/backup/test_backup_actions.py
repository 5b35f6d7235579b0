"""The Chaos Toolkit activities of backup-restore: published as Chaos Toolkit expects."""

from __future__ import annotations

import inspect

import pytest
from chaoslib.exceptions import ActivityFailed, InterruptExecution

from peakready.backup import actions


def test_all_lists_exactly_the_activities_with_configuration_and_secrets_last() -> None:
    public = {
        name
        for name, fn in inspect.getmembers(actions, inspect.isfunction)
        if fn.__module__ == actions.__name__ and not name.startswith("_")
    }
    assert set(actions.__all__) == public
    for name in actions.__all__:
        function = getattr(actions, name)
        assert list(inspect.signature(function).parameters)[-2:] == ["configuration", "secrets"]
        assert function.__doc__


def test_order_count_out_of_bounds_is_refused() -> None:
    with pytest.raises(ActivityFailed, match="orders 0: expected 1 to 1000"):
        actions.restore_latest_backup(orders=0)


def test_the_aws_target_is_not_drilled_here() -> None:
    config = {"peakready_target": "aws", "peakready_stack": "dev"}
    with pytest.raises(InterruptExecution, match="drills the lab target only"):
        actions.recoverable_within_rpo(configuration=config)


def test_no_running_lab_interrupts_with_the_reason(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path / "nolab"))
    with pytest.raises(InterruptExecution, match=r"^backup-restore: "):
        actions.recoverable_within_rpo(configuration={"peakready_stack": "dev"})
