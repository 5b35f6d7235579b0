"""The one factory of targets: the right driver per target, one clear error otherwise."""

from __future__ import annotations

import pytest

from peakready.errors import PeakreadyError
from peakready.targets import TARGETS, get_driver
from peakready.targets.aws import AwsDriver


def test_targets_are_lab_and_aws() -> None:
    assert TARGETS == ("lab", "aws")


def test_an_unknown_target_is_refused_in_one_line() -> None:
    with pytest.raises(PeakreadyError) as caught:
        get_driver("gcp", "dev")
    assert caught.value.lines == ["target 'gcp': expected one of lab, aws"]


def test_aws_driver_gets_the_stack_when_no_configuration_is_given() -> None:
    driver = get_driver("aws", "staging")
    assert isinstance(driver, AwsDriver)
    assert driver.configuration == {"peakready_stack": "staging"}


def test_lab_driver_without_a_running_lab_says_how_to_start_one(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path))
    with pytest.raises(PeakreadyError) as caught:
        get_driver("lab", "dev")
    assert caught.value.exit_code == 2
    assert "peakready lab up --stack dev" in caught.value.lines[0]
