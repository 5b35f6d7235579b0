"""AWS-only probes: the state of peakready's own FIS experiments and of the ALB targets."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.targets.aws.driver import AwsDriver

__all__ = ["app_targets_health", "az_power_experiments"]


def az_power_experiments(
    configuration: Configuration = None, secrets: Secrets = None
) -> list[dict[str, Any]]:
    """The AWS FIS power-interruption experiments peakready started on this stack:
    ``{"id", "az", "status", "template_id"}`` each, oldest first."""
    return AwsDriver(configuration, secrets).fault_experiments()


def app_targets_health(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, dict[str, int]]:
    """Targets of the app group's load-balancer target groups, counted per health state:
    ``{"<target group>": {"healthy": 3, "initial": 1}}``."""
    return AwsDriver(configuration, secrets).app_group_at_desired()["targets"]
