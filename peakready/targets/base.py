"""The interface both fault drivers (lab and AWS) implement.

Chaos Toolkit activities in ``peakready.chaos.<tier>`` are target-neutral: they build
the driver named by the configuration (``peakready_target``: ``lab`` or ``aws``,
``peakready_stack``: the stack name) and call one of these methods. Every method
returns JSON-serialisable data describing what it did or saw, and raises
``chaoslib.exceptions.ActivityFailed`` when it cannot do it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, Protocol

from chaoslib.exceptions import ActivityFailed
from rich.console import Console

from peakready.errors import PeakreadyError
from peakready.monitoring.detection import Seen


class Driver(Protocol):
    target: str  # "lab" or "aws"

    def outputs(self) -> dict[str, Any]:
        """The stack outputs of DESIGN §3."""
        ...

    # app tier ---------------------------------------------------------------
    def app_instances(self) -> list[dict[str, Any]]:
        """Instances of the app group: ``{"id", "az", "healthy": bool}`` each."""
        ...

    def app_group_at_desired(self) -> dict[str, Any]:
        """``{"desired": n, "healthy": m, "ok": m >= n}``."""
        ...

    def kill_app_instance(self, az: str | None = None) -> dict[str, Any]:
        """Kill one app instance (in ``az`` when given): ``{"id", "az"}``."""
        ...

    def reset_app_group(self) -> dict[str, Any]:
        """Before a peak rehearsal: the group back at its resting size (lab: the
        supervisor's minimum, capacity measured afresh; AWS: left as it is, a live
        group's size belongs to its operators)."""
        ...

    def capacity_per_instance(self) -> tuple[float, str]:
        """Requests/s one app instance serves, and how that was found (lab: a short
        closed-loop probe; AWS: the stack's ``app.requests_per_instance`` or the bench)."""
        ...

    def scaling_timeline(self, since: float) -> list[dict[str, Any]]:
        """The app group's scaling since ``since`` (epoch s): ``{"event": "scale", "at",
        "desired", "previous", "reason"}`` and ``{"event": "in_service", "at",
        "in_service", "target"}`` (requests/s per target the policy tracks) entries."""
        ...

    # monitoring -------------------------------------------------------------
    def alerts(self) -> list[dict[str, Any]] | None:
        """The alerts firing now, as Alertmanager's API gives them (``fingerprint``,
        ``startsAt``, ``labels.alertname`` each); None when there is no monitoring to
        ask or it did not answer (lab: Alertmanager; AWS: the stack's CloudWatch
        alarms in state ALARM)."""
        ...

    def unsettled_alerts(self) -> list[str] | None:
        """Names of the page alerts pending or firing now: a drill's steady state begins
        only once there is none (lab: Prometheus's rule states, pending included; AWS:
        alarms in ALARM, CloudWatch has no pending state); None: nobody to ask."""
        ...

    def alert_history(self, since: float, until: float) -> list[Seen] | None:
        """The firing episodes the target itself recorded between ``since`` and
        ``until`` (epoch s): exact to the second, and complete where a poll missed
        one; None where it keeps no history (lab: the watcher's polls are the record)."""
        ...

    # a whole availability zone ------------------------------------------------
    def power_off_az(self, az: str) -> dict[str, Any]:
        """Every component in ``az`` stops at once (lab: cgroup freeze)."""
        ...

    def power_on_az(self, az: str) -> dict[str, Any]:
        """Undo :meth:`power_off_az` (lab: thaw). Idempotent."""
        ...

    # database -----------------------------------------------------------------
    def db_primary(self) -> dict[str, Any]:
        """``{"id", "az"}`` of the current primary."""
        ...

    def fail_database_primary(self) -> dict[str, Any]:
        """The primary node dies (lab: kill -9 Patroni and its postmaster)."""
        ...

    def stale_primary_rejects_writes(self, member_id: str) -> dict[str, Any]:
        """After recovery: the old primary ``member_id`` does not accept writes."""
        ...

    # cache ------------------------------------------------------------------
    def cache_primary(self) -> dict[str, Any]:
        """``{"id", "az", "agreed": bool}`` of the current cache primary (``agreed``: every
        observer — lab: each Sentinel; AWS: the replication group — names the same one)."""
        ...

    def fail_cache_primary(self) -> dict[str, Any]:
        """The Redis primary dies (lab: kill -9; AWS: TestFailover)."""
        ...

    def stop_cache(self) -> dict[str, Any]:
        """The whole cache tier is unavailable (degraded-dependencies)."""
        ...

    # search -----------------------------------------------------------------
    def kill_search_node(self, az: str | None = None) -> dict[str, Any]:
        """One search node dies."""
        ...

    def stop_search(self) -> dict[str, Any]:
        """The whole search tier is unavailable (degraded-dependencies)."""
        ...

    # order pipeline -------------------------------------------------------------
    def stop_consumers(self) -> dict[str, Any]:
        """Every back-office consumer stops (lab: SIGTERM each worker; AWS: the worker
        group to 0): ``{"stopped": [...]}``."""
        ...

    def start_consumers(self) -> dict[str, Any]:
        """Undo :meth:`stop_consumers` and wait until they consume again. Idempotent."""
        ...

    def queue_leader(self) -> dict[str, Any]:
        """``{"id", "az"}`` of the broker node leading the order queue."""
        ...

    def fail_queue_leader(self) -> dict[str, Any]:
        """The broker node leading the order queue dies (lab: kill -9 the node)."""
        ...

    # rollback ----------------------------------------------------------------
    def restore(self) -> dict[str, Any]:
        """Bring every component back: thaw AZs, restart what was killed or stopped,
        wait until healthy. Idempotent; safe after any fault and after Ctrl-C."""
        ...


def restore_uninterruptibly(build: Callable[[], Driver], console: Console) -> None:
    """Restore the target (``build()``'s driver, ``restore()``) with Ctrl-C and SIGTERM
    ignored until it is done; a failure is printed, not raised (this runs on the way out)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        build().restore()
        console.print("environment restored")
    except (ActivityFailed, PeakreadyError) as exc:
        console.print(f"[red]restore failed: {exc}[/]")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
