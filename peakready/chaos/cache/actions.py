"""Actions on the cache tier."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["fail_cache_primary", "stop_cache"]


def fail_cache_primary(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The Redis primary dies (lab: kill -9; AWS: ElastiCache TestFailover).
    Returns ``{"id", "az"}`` of the old primary."""
    failed = shared.driver(configuration, secrets).fail_cache_primary()
    shared.record(configuration, "fault", "fail_cache_primary", **failed)
    return failed


def stop_cache(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """The whole cache tier becomes unavailable (every Redis server stops)."""
    stopped = shared.driver(configuration, secrets).stop_cache()
    shared.record(configuration, "fault", "stop_cache", **stopped)
    return stopped
