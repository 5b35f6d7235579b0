"""Where the drill asks the back office: the lab's output, or on AWS only a given URL."""

from __future__ import annotations

from peakready.chaos.verify.shared import backoffice_url

OUTPUTS = {"backoffice_endpoint": "http://internal-backoffice.elb.example"}


def test_the_lab_asks_its_own_output() -> None:
    assert backoffice_url({"peakready_target": "lab"}, OUTPUTS) == OUTPUTS["backoffice_endpoint"]


def test_aws_skips_the_vpc_only_load_balancer_unless_told_a_url_that_reaches_it() -> None:
    assert backoffice_url({"peakready_target": "aws"}, OUTPUTS) is None
    given = {"peakready_target": "aws", "peakready_backoffice_endpoint": "http://127.0.0.1:8001"}
    assert backoffice_url(given, OUTPUTS) == "http://127.0.0.1:8001"


def test_no_back_office_no_check() -> None:
    assert backoffice_url({"peakready_target": "lab"}, {}) is None
