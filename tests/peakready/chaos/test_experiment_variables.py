"""Experiment variables are validated like the CLI's options, before any fault or load."""

from __future__ import annotations

from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed, InterruptExecution

from peakready.chaos import shared
from peakready.chaos.load import control


@pytest.mark.parametrize("stack", ["../../etc", "a/b", "", ".hidden", "x" * 100, "dev;rm"])
def test_a_stack_that_is_not_a_stack_name_is_refused(stack: str) -> None:
    if stack == "":
        assert shared.stack_of({"peakready_stack": stack}) == "dev"  # unset: the default
        return
    with pytest.raises(ActivityFailed, match=r"^peakready_stack: stack name "):
        shared.stack_of({"peakready_stack": stack})


def _before(tmp_path: Path, run_dir: str, dry: bool = False) -> None:
    configuration = {"peakready_run_dir": run_dir, "peakready_scenario": "app-instance-loss"}
    context = {"dry": "activities"} if dry else {}
    control.before_experiment_control(context, configuration=configuration)


@pytest.mark.parametrize(
    ("run_dir", "expected"),
    [
        ("/proc/peakready-run", "load: cannot use the run folder"),
        ("{file}", "is a file, expected a folder"),
        ("{file}/below", "is a file, expected a folder"),
        ("", "peakready_run_dir: empty, expected a folder"),
    ],
)
def test_a_run_dir_that_cannot_hold_the_run_stops_the_experiment_before_the_fault(
    tmp_path: Path, run_dir: str, expected: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(InterruptExecution, match=expected):
        _before(tmp_path, run_dir.format(file=a_file))
    assert not control._running


def test_a_dry_run_sends_no_load(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _before(tmp_path, str(run), dry=True)
    assert not control._running
    assert not run.exists()  # not even the run folder is touched
