"""The rollback of every scenario."""

from __future__ import annotations

import time
from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["restore"]


def restore(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """Bring every component back and wait until the stack is healthy: thaw frozen
    AZs, restart what was killed or stopped. Idempotent; safe after any fault."""
    started = time.time()  # the fault's window ends here (``verdict.failover.measure``)
    restored = shared.driver(configuration, secrets).restore()
    shared.record(
        configuration, "recovery", "restore", healthy=restored.get("healthy"), started=started
    )
    return restored
