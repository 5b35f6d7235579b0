"""Probes of the order pipeline."""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared
from peakready.load.records import read_events

__all__ = ["queue_leader", "wait_for_queue_leader"]


def queue_leader(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """``{"id", "az", "node"}`` of the broker node leading the order queue."""
    return shared.driver(configuration, secrets).queue_leader()


def wait_for_queue_leader(
    timeout_s: float = 30.0, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Wait until another node leads the order queue than the one the last fault killed
    (the quorum queue's Raft election). Returns ``{"from", "to", "election_s"}``: seconds
    from the fault until a surviving node reported the new leader."""
    faults = [
        e
        for e in read_events(shared.run_dir(configuration))
        if e.get("event") == "fail_queue_leader"
    ]
    if not faults:
        raise ActivityFailed("wait for queue leader: no broker node was failed in this run")
    old, at = str(faults[-1]["node"]), float(faults[-1]["at"])
    drv = shared.driver(configuration, secrets)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            now = drv.queue_leader()
        except ActivityFailed:
            now = {}
        if now.get("node") not in (None, old):
            seconds = round(time.time() - at, 3)
            shared.record(
                configuration, "recovery", "queue_leader_elected", to=now["id"], election_s=seconds
            )
            return {"from": old, "to": now["id"], "election_s": seconds}
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"no new leader of the order queue within {timeout_s:.0f} s")
        time.sleep(0.3)  # each look is a rabbitmqctl call (≈ 0.45 s of CPU)
