"""The Chaos Toolkit activities of backup-restore: published, and refusing what they cannot do.

(``__all__`` and the activities' signatures are checked for every tier by
tests/peakready/chaos/test_extension.py.)
"""

from __future__ import annotations

import pytest
from chaoslib.exceptions import ActivityFailed, InterruptExecution

from peakready import chaos as extension
from peakready.chaos.backup import actions, probes


def test_discovery_publishes_the_backup_activities() -> None:
    names = {(a["type"], a["name"]) for a in extension.discover()["activities"]}
    assert ("action", "restore_latest_backup") in names
    assert ("probe", "recoverable_within_rpo") in names


def test_order_count_out_of_bounds_is_refused() -> None:
    with pytest.raises(ActivityFailed, match="orders 0: expected 1 to 1000"):
        actions.restore_latest_backup(orders=0)


def test_the_aws_target_is_not_drilled_here() -> None:
    config = {"peakready_target": "aws", "peakready_stack": "dev"}
    with pytest.raises(InterruptExecution, match="drills the lab target only"):
        probes.recoverable_within_rpo(configuration=config)


def test_no_running_lab_interrupts_with_the_reason(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path / "nolab"))
    with pytest.raises(InterruptExecution, match=r"^backup-restore: "):
        probes.recoverable_within_rpo(configuration={"peakready_stack": "dev"})
