"""Fixtures of the AWS driver tests: the moto world, a request recorder, Stubber hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import aws_world
import boto3
import pytest
from botocore.stub import Stubber

aws = aws_world.aws  # fixtures, used by name
world = aws_world.world
calls = aws_world.calls


@pytest.fixture
def stub(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any, str], Stubber]]:
    """``stub(module, service)``: the ``aws_client`` of ``module`` hands out one Stubber-wrapped
    client for ``service`` (other services still reach moto). Asserts every stubbed
    response was used."""
    stubbers: list[Stubber] = []

    def make(module: Any, service: str) -> Stubber:
        real = module.aws_client
        client = boto3.client(service, region_name=aws_world.REGION)
        stubber = Stubber(client)
        stubber.activate()
        stubbers.append(stubber)

        def fake(resource_name: str, configuration: Any = None, secrets: Any = None) -> Any:
            if resource_name == service:
                return client
            return real(resource_name, configuration, secrets)

        monkeypatch.setattr(module, "aws_client", fake)
        return stubber

    yield make
    for stubber in stubbers:
        stubber.assert_no_pending_responses()
