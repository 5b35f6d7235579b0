"""Probes of the cache tier."""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared
from peakready.load.records import read_events

__all__ = ["cache_primary", "wait_for_cache_failover"]


def cache_primary(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """``{"id", "az", "agreed"}`` of the current cache primary."""
    return shared.driver(configuration, secrets).cache_primary()


def wait_for_cache_failover(
    timeout_s: float = 30.0, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Wait until a new cache primary, agreed on by every observer, replaces the one the
    last fault killed. Returns ``{"from", "to", "failover_s"}`` (seconds since the fault)."""
    faults = [
        e
        for e in read_events(shared.run_dir(configuration))
        if e.get("event") == "fail_cache_primary"
    ]
    if not faults:
        raise ActivityFailed("wait for cache failover: no cache primary was failed in this run")
    old, at = str(faults[-1]["id"]), float(faults[-1]["at"])
    drv = shared.driver(configuration, secrets)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            now = drv.cache_primary()
        except ActivityFailed:
            now = {}
        if now.get("id") not in (None, old) and now.get("agreed"):
            seconds = round(time.time() - at, 3)
            shared.record(
                configuration, "recovery", "cache_failover", to=now["id"], failover_s=seconds
            )
            return {"from": old, "to": now["id"], "failover_s": seconds}
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"cache primary {old} not replaced within {timeout_s:.0f} s")
        time.sleep(0.2)
