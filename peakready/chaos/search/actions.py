"""Actions on the search tier."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["kill_search_node", "stop_search"]


def kill_search_node(
    az: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """One search node (in ``az`` when given) dies without warning.
    Returns ``{"id", "az"}`` of the killed node."""
    killed = shared.driver(configuration, secrets).kill_search_node(az=az)
    shared.record(configuration, "fault", "kill_search_node", **killed)
    return killed


def stop_search(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """The whole search tier becomes unavailable (every search node stops)."""
    stopped = shared.driver(configuration, secrets).stop_search()
    shared.record(configuration, "fault", "stop_search", **stopped)
    return stopped
