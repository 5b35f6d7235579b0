"""Actions on the app tier."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["kill_app_instance"]


def kill_app_instance(
    az: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Kill one instance of the app group (in ``az`` when given) without warning.

    The load balancer must route around it and the group must replace it.
    Returns ``{"id", "az"}`` of the killed instance.
    """
    killed = shared.driver(configuration, secrets).kill_app_instance(az=az)
    shared.record(configuration, "fault", "kill_app_instance", **killed)
    return killed
