"""Actions on the database tier."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["fail_database_primary"]


def fail_database_primary(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The database primary node dies at once (lab: kill -9 of Patroni and its
    postmaster; AWS: reboot with failover). Returns ``{"id", "az"}`` of the old primary."""
    failed = shared.driver(configuration, secrets).fail_database_primary()
    shared.record(configuration, "fault", "fail_database_primary", **failed)
    return failed
