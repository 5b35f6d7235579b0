"""The rollback of every scenario."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["restore"]


def restore(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """Bring every component back and wait until the stack is healthy: thaw frozen
    AZs, restart what was killed or stopped. Idempotent; safe after any fault."""
    restored = shared.driver(configuration, secrets).restore()
    shared.record(configuration, "recovery", "restore", healthy=restored.get("healthy"))
    return restored
