"""The lab group's scaling policy: target tracking on requests per target, like the ASG's.

The stack's group tracks ``app.target_requests_per_target`` ALB requests per target per
minute. A lab instance is smaller than the stack's (a CPU quota of ``lab.app_cpu_quota``
cores), so the lab tracks the same *share of an instance's capacity*: the stack's target
÷ the requests/s one stack instance serves (``app.requests_per_instance``, else
``make bench``'s figure), times the requests/s one lab instance serves, which the
supervisor measures as it runs (its quota ÷ the CPU seconds an instance spends per
request). Warm-up and the scale-in delay are the stack's, ``lab.time_scale`` times
faster; min and max are the stack's, scaled by ``lab.app_instances ÷ app.min_size``; the
peak windows' pre-warm minimums are scaled the same way and apply from pre-warm to end.

Everything here is pure: :class:`Autoscaler` takes samples and returns decisions, and
the supervisor (``peakready.lab.supervisor``) acts on them and records them.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from peakready.topology import Topology

#: The supervisor's scaling timeline in the lab folder: one JSON line per decision and per
#: change of the instances in service.
SCALING_FILE = "scaling.jsonl"
#: While this file exists in the lab folder the group does not scale (as an ASG's
#: SuspendProcesses): benches that measure a fixed group create it.
SCALING_SUSPENDED = "scaling.suspended"
#: Created by a peak rehearsal before it starts: the supervisor sets the group back to
#: its resting size (the policy's minimum now) and forgets its capacity estimate, as an
#: operator resets an ASG's desired capacity before a rehearsal; then removes the file.
SCALING_RESET = "scaling.reset"
#: CPU seconds per request assumed until the supervisor has measured its instances
#: (the storefront's mixed figure on the 2-core lab machine: 1.0-2.5 ms, LAB-NOTES).
DEFAULT_CPU_PER_REQUEST_S = 0.0015
#: Seconds of samples one metric value averages (a CloudWatch datapoint, compressed).
METRIC_WINDOW_S = 2.0
#: Capacity is only estimated from windows where instances use this share of their quota:
#: at low load the idle cost (health checks, the event loop) would inflate it.
ESTIMATE_MIN_UTILISATION = 0.3
#: … over at least this many requests per window, and once this many windows agree.
ESTIMATE_MIN_REQUESTS = 60
ESTIMATE_MIN_SAMPLES = 3
#: Scale in only while the metric stays below this share of the target (hysteresis).
SCALE_IN_BELOW = 0.8


@dataclass(frozen=True)
class ScheduledMinimum:
    """A peak window's pre-warm: ``min_size`` from ``start`` to ``end`` (epoch seconds)."""

    name: str
    start: float
    end: float
    min_size: int


@dataclass(frozen=True)
class ScalingPolicy:
    min_size: int
    max_size: int
    #: The stack's target as a share of one instance's capacity (0.4: 40 % of it).
    target_utilisation: float
    cpu_quota: float  # cores per instance
    warmup_s: float
    scale_in_after_s: float
    enabled: bool = True
    scheduled: tuple[ScheduledMinimum, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScalingPolicy:
        fields = {k: v for k, v in data.items() if k != "scheduled"}
        scheduled = tuple(ScheduledMinimum(**s) for s in data.get("scheduled", []))
        return cls(**fields, scheduled=scheduled)

    def minimum_at(self, now: float) -> tuple[int, str | None]:
        """The group's minimum at ``now`` (epoch seconds) and the window raising it."""
        active = [s for s in self.scheduled if s.start <= now < s.end]
        best = max(active, key=lambda s: s.min_size, default=None)
        if best is None or best.min_size <= self.min_size:
            return self.min_size, None
        return min(best.min_size, self.max_size), best.name


def lab_policy(
    topology: Topology, stack_requests_per_instance: float, now: datetime
) -> ScalingPolicy:
    """The lab's policy for ``topology`` (see the module docstring)."""
    app, lab = topology.app, topology.lab
    ratio = lab.app_instances / max(app.min_size, 1)
    max_size = lab.app_max_instances or min(12, max(lab.app_instances, round(app.max_size * ratio)))
    scheduled = []
    for window in topology.peak_windows:
        if not window.app_min_capacity:
            continue
        occurrence = window.occurrence(now)
        scheduled.append(
            ScheduledMinimum(
                occurrence.name,
                occurrence.prewarm_utc.timestamp(),
                occurrence.end_utc.timestamp(),
                min(max_size, max(1, math.ceil(window.app_min_capacity * ratio))),
            )
        )
    return ScalingPolicy(
        min_size=lab.app_instances,
        max_size=max_size,
        target_utilisation=(app.target_requests_per_target / 60.0) / stack_requests_per_instance,
        cpu_quota=lab.app_cpu_quota,
        warmup_s=app.instance_warmup_s / lab.time_scale,
        scale_in_after_s=app.scale_in_after_s / lab.time_scale,
        enabled=lab.autoscaling,
        scheduled=tuple(scheduled),
    )


@dataclass(frozen=True)
class Sample:
    """What the supervisor reads once per tick: HAProxy's counters and the instances' CPU."""

    at: float  # epoch seconds
    requests: int  # requests that reached the app tier's backend (served or shed), total
    served: int  # requests forwarded to an instance, total
    cpu_s: float  # CPU seconds of the instances in service, total since they started
    in_service: int  # instances past warm-up and up in HAProxy


@dataclass(frozen=True)
class Decision:
    """A change of the group's desired size, and what triggered it."""

    at: float
    desired: int
    previous: int
    reason: str
    metric: float  # requests/s per target at the time
    target: float  # requests/s per target the policy tracks

    def as_dict(self) -> dict[str, Any]:
        return {"event": "scale", **asdict(self)}


@dataclass
class Autoscaler:
    policy: ScalingPolicy
    desired: int
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=64))
    cpu_per_request: deque[float] = field(default_factory=lambda: deque(maxlen=15))
    below_since: float | None = None
    metric: float = 0.0

    @property
    def capacity_per_instance(self) -> float:
        """Requests/s one lab instance serves at its quota (measured, else the default)."""
        samples = self.cpu_per_request
        enough = len(samples) >= ESTIMATE_MIN_SAMPLES
        per_request = statistics.median(samples) if enough else DEFAULT_CPU_PER_REQUEST_S
        return self.policy.cpu_quota / per_request

    @property
    def target(self) -> float:
        """Requests/s per target the lab tracks."""
        return self.policy.target_utilisation * self.capacity_per_instance

    def observe(self, sample: Sample) -> Decision | None:
        """Take one sample; the decision it leads to, if the desired size changes."""
        self.samples.append(sample)
        minimum, window = self.policy.minimum_at(sample.at)
        if self.desired < minimum:
            return self._set(sample.at, minimum, f"scheduled minimum of {window or 'the group'}")
        old = next((s for s in self.samples if sample.at - s.at <= METRIC_WINDOW_S), None)
        if old is None or sample.at - old.at < METRIC_WINDOW_S / 2 or sample.in_service == 0:
            return None
        elapsed = sample.at - old.at
        served = sample.served - old.served
        cpu = sample.cpu_s - old.cpu_s
        busy = cpu / (elapsed * sample.in_service * self.policy.cpu_quota)
        steady = old.in_service == sample.in_service
        if steady and served >= ESTIMATE_MIN_REQUESTS and busy >= ESTIMATE_MIN_UTILISATION:
            self.cpu_per_request.append(cpu / served)
        self.metric = (sample.requests - old.requests) / elapsed / sample.in_service
        if not self.policy.enabled:
            return None
        target = self.target
        if self.metric > target:
            self.below_since = None
            wanted = min(self.policy.max_size, math.ceil(sample.in_service * self.metric / target))
            if wanted > self.desired:
                return self._set(sample.at, wanted, "requests per target above the target")
            return None
        if self.metric >= target * SCALE_IN_BELOW or self.desired <= minimum:
            self.below_since = None
            return None
        if self.below_since is None:
            self.below_since = sample.at
        elif sample.at - self.below_since >= self.policy.scale_in_after_s:
            self.below_since = sample.at
            return self._set(sample.at, self.desired - 1, "requests per target below the target")
        return None

    def reset(self, at: float) -> Decision | None:
        """Back to the resting size at ``at``, capacity to be measured afresh: the
        decision, if the size changes."""
        self.cpu_per_request.clear()
        self.below_since = None
        minimum, _ = self.policy.minimum_at(at)
        if self.desired <= minimum:
            return None
        return self._set(at, minimum, "reset to the resting size before a rehearsal")

    def _set(self, at: float, desired: int, reason: str) -> Decision:
        decision = Decision(
            at, desired, self.desired, reason, round(self.metric, 2), round(self.target, 2)
        )
        self.desired = desired
        return decision


@dataclass(frozen=True)
class BacklogPolicy:
    """The back-office worker group's policy: target tracking on the queue's backlog per
    worker, as the stack's worker ASG tracks Amazon MQ's ``MessageCount`` ÷ its
    in-service instances (``infra/app_tier.py``)."""

    max_size: int
    per_instance: int  # orders waiting per worker the policy tracks
    scale_in_after_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BacklogPolicy:
        return cls(
            int(data["max_size"]), int(data["per_instance"]), float(data["scale_in_after_s"])
        )


def lab_backlog_policy(topology: Topology, minimum: int, slots: int) -> BacklogPolicy | None:
    """The lab's worker policy: the stack's, its maximum scaled by ``minimum`` (the lab's
    one worker per AZ) ÷ ``queue.consumer_min_size``, its target and scale-in delay
    ``lab.time_scale`` times smaller, as the app group's timers are."""
    queue, lab = topology.queue, topology.lab
    if queue is None:
        return None
    ratio = minimum / max(queue.consumer_min_size, 1)
    return BacklogPolicy(
        max_size=min(slots, max(minimum, round(queue.consumer_max_size * ratio))),
        per_instance=max(1, round(queue.backlog_per_worker / lab.time_scale)),
        scale_in_after_s=topology.app.scale_in_after_s / lab.time_scale,
    )


@dataclass
class BacklogScaler:
    """The worker group's size from the backlog, tick by tick (pure).

    ``requested`` is the operator's desired capacity (UpdateAutoScalingGroup: the
    drills, ``lab up``); it is the group's floor, applies at once, and 0 stops the
    group whatever waits. Above it the group grows at once to one worker per
    ``per_instance`` orders waiting, up to the maximum, and shrinks only once the
    backlog has wanted fewer workers for ``scale_in_after_s``.
    """

    policy: BacklogPolicy
    requested: int | None = None
    fewer_since: float | None = None

    def size(self, at: float, backlog: int | None, requested: int, current: int) -> Decision | None:
        """The decision for this tick (None: stay at ``current``); ``backlog`` None when
        the broker gave no recent answer (the group then holds its size)."""
        p = self.policy
        target = float(p.per_instance)
        metric = backlog / max(current, 1) if backlog is not None else 0.0
        if requested != self.requested:
            self.requested, self.fewer_since = requested, None
            wanted = self._wanted(backlog, requested) if requested else 0
            if wanted == current:
                return None
            return Decision(at, wanted, current, "desired capacity set", metric, target)
        if not requested or backlog is None:
            return None
        wanted = self._wanted(backlog, requested)
        if wanted > current:
            self.fewer_since = None
            return Decision(
                at, wanted, current, "backlog per worker above the target", metric, target
            )
        if wanted == current:
            self.fewer_since = None
            return None
        if self.fewer_since is None:
            self.fewer_since = at
        if at - self.fewer_since < p.scale_in_after_s:
            return None
        self.fewer_since = None
        return Decision(at, wanted, current, "backlog per worker below the target", metric, target)

    def _wanted(self, backlog: int | None, requested: int) -> int:
        if backlog is None:
            return requested
        need = math.ceil(backlog / self.policy.per_instance)
        return max(requested, min(self.policy.max_size, need))
