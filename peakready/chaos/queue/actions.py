"""Actions on the order pipeline."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["fail_queue_leader", "start_consumers", "stop_consumers"]


def stop_consumers(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """Every back-office consumer stops; orders keep arriving and queue up."""
    stopped = shared.driver(configuration, secrets).stop_consumers()
    shared.record(configuration, "fault", "stop_consumers", **stopped)
    return stopped


def start_consumers(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """The consumers start again (and consume); the backlog's drain starts now."""
    started = shared.driver(configuration, secrets).start_consumers()
    shared.record(configuration, "recovery", "consumers_restarted", **started)
    return started


def fail_queue_leader(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The broker node leading the order queue dies. Returns ``{"id", "az", "node"}``."""
    failed = shared.driver(configuration, secrets).fail_queue_leader()
    shared.record(configuration, "fault", "fail_queue_leader", **failed)
    return failed
