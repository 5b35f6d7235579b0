"""The lab group's scaling policy: derived from the stack, and its decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from peakready.lab.autoscaler import (
    DEFAULT_CPU_PER_REQUEST_S,
    Autoscaler,
    BacklogPolicy,
    BacklogScaler,
    Sample,
    ScalingPolicy,
    ScheduledMinimum,
    lab_backlog_policy,
    lab_policy,
)
from peakready.topology import Topology

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def dev(**lab: object) -> Topology:
    config = {
        "peakready:region": "eu-central-1",
        "peakready:forecast": {"requests_per_s": 300, "orders_per_s": 20},
        "peakready:app": {
            "min_size": 3,
            "max_size": 6,
            "target_requests_per_target": 3600,
            "instance_warmup_s": 60,
            "scale_in_after_s": 900,
        },
        "peakready:lab": {"app_instances": 3, **lab},
    }
    return Topology.from_config("dev", config, "test")


def policy(**overrides: object) -> ScalingPolicy:
    values: dict[str, object] = {
        "min_size": 3,
        "max_size": 6,
        "target_utilisation": 0.4,
        "cpu_quota": 0.2,
        "warmup_s": 2.0,
        "scale_in_after_s": 30.0,
    }
    values.update(overrides)
    return ScalingPolicy(**values)  # type: ignore[arg-type]


def feed(scaler: Autoscaler, per_target_s: float, seconds: float, start: float = 0.0) -> list:
    """Samples every 0.5 s of a load of ``per_target_s`` requests/s per instance of the
    group as it is at the start (the load stays; new instances take their share)."""
    decisions = []
    rate = per_target_s * scaler.desired
    requests = 0.0
    t = start
    while t <= start + seconds:
        sample = Sample(t, int(requests), int(requests), 0.0, scaler.desired)
        decisions.append(scaler.observe(sample))
        requests += rate * 0.5
        t += 0.5
    return [d for d in decisions if d is not None]


def test_the_lab_policy_is_the_stacks_scaled_to_the_lab() -> None:
    lab = lab_policy(dev(), stack_requests_per_instance=150, now=NOW)
    # 3600 requests per target per minute = 60/s = 40 % of 150/s
    assert lab.target_utilisation == pytest.approx(0.4)
    assert (lab.min_size, lab.max_size) == (3, 6)
    assert lab.warmup_s == pytest.approx(2.0)  # 60 s, 30 times faster
    assert lab.scale_in_after_s == pytest.approx(30.0)
    half = lab_policy(dev(app_instances=2, app_cpu_quota=0.5), 150, NOW)
    assert (half.min_size, half.max_size, half.cpu_quota) == (2, 4, 0.5)
    assert lab_policy(dev(app_max_instances=5), 150, NOW).max_size == 5


def test_a_peak_windows_prewarm_raises_the_lab_minimum_from_prewarm_to_end() -> None:
    topology = Topology.from_config(
        "dev",
        {
            "peakready:region": "eu-central-1",
            "peakready:forecast": {"requests_per_s": 300, "orders_per_s": 20},
            "peakready:app": {"min_size": 2, "max_size": 8},
            "peakready:lab": {"app_instances": 2},
            "peakready:peak_windows": [
                {
                    "name": "midnight-sale",
                    "start": "2026-12-05T00:00:00Z",
                    "end": "2026-12-05T02:00:00Z",
                    "requests_per_s": 600,
                    "app_min_capacity": 6,
                    "prewarm_minutes": 30,
                }
            ],
        },
        "test",
    )
    lab = lab_policy(topology, 150, NOW)
    (window,) = lab.scheduled
    assert window.min_size == 6
    assert window.start == datetime(2026, 12, 4, 23, 30, tzinfo=UTC).timestamp()
    assert lab.minimum_at(window.start - 1) == (2, None)
    assert lab.minimum_at(window.start + 1) == (6, "midnight-sale")
    assert lab.minimum_at(window.end) == (2, None)


def test_load_above_the_target_scales_out_in_one_step_to_what_it_needs() -> None:
    scaler = Autoscaler(policy(), desired=3)
    target = scaler.target
    assert target == pytest.approx(0.4 * 0.2 / DEFAULT_CPU_PER_REQUEST_S)
    (decision,) = feed(scaler, per_target_s=target * 1.5, seconds=3)
    assert decision.previous == 3
    assert decision.desired == 5  # ceil(3 x 1.5)
    assert decision.metric > decision.target


def test_scale_out_stops_at_the_maximum() -> None:
    scaler = Autoscaler(policy(), desired=3)
    decisions = feed(scaler, per_target_s=scaler.target * 10, seconds=3)
    assert [d.desired for d in decisions] == [6]


def test_no_decision_while_autoscaling_is_off() -> None:
    scaler = Autoscaler(policy(enabled=False), desired=3)
    assert feed(scaler, per_target_s=scaler.target * 10, seconds=5) == []
    assert scaler.metric > scaler.target  # still measured


def test_scale_in_waits_for_the_delay_and_removes_one_at_a_time() -> None:
    scaler = Autoscaler(policy(), desired=5)
    low = scaler.target * 0.5
    assert feed(scaler, per_target_s=low, seconds=20) == []
    decisions = feed(scaler, per_target_s=low, seconds=20, start=20.5)
    assert [d.desired for d in decisions] == [4]  # 30 s below the target
    assert "below" in decisions[0].reason


def test_load_just_under_the_target_does_not_scale_in() -> None:
    scaler = Autoscaler(policy(), desired=5)
    assert feed(scaler, per_target_s=scaler.target * 0.9, seconds=100) == []


def test_the_scheduled_minimum_applies_at_once() -> None:
    window = ScheduledMinimum("sale", 10.0, 100.0, 5)
    scaler = Autoscaler(policy(scheduled=(window,)), desired=3)
    assert scaler.observe(Sample(5.0, 0, 0, 0.0, 3)) is None
    decision = scaler.observe(Sample(10.0, 0, 0, 0.0, 3))
    assert decision is not None and (decision.desired, decision.reason) == (
        5,
        "scheduled minimum of sale",
    )


def test_capacity_is_measured_from_cpu_per_request_when_instances_are_busy() -> None:
    scaler = Autoscaler(policy(), desired=3)
    # 3 instances of 0.2 CPU, each busy 60 %, 2 ms of CPU per request: 60 requests/s each
    cpu = requests = 0.0
    for i in range(10):
        scaler.observe(Sample(i * 0.5, int(requests), int(requests), cpu, 3))
        requests += 3 * 60 * 0.5
        cpu += 3 * 0.2 * 0.6 * 0.5
    assert scaler.capacity_per_instance == pytest.approx(100.0, rel=0.05)  # 0.2 / 0.002
    assert scaler.target == pytest.approx(40.0, rel=0.05)


def test_idle_instances_do_not_set_the_capacity() -> None:
    scaler = Autoscaler(policy(), desired=3)
    cpu = 0.0
    for i in range(10):  # health checks only: CPU, a handful of requests
        scaler.observe(Sample(i * 0.5, i, i, cpu, 3))
        cpu += 0.01
    assert scaler.capacity_per_instance == pytest.approx(0.2 / DEFAULT_CPU_PER_REQUEST_S)


def test_a_reset_returns_to_the_minimum_and_measures_capacity_afresh() -> None:
    scaler = Autoscaler(policy(), desired=3)
    cpu = requests = 0.0
    for i in range(10):  # 4 ms of CPU per request: a capacity estimate of 50/s
        scaler.observe(Sample(i * 0.5, int(requests), int(requests), cpu, 3))
        requests += 3 * 30 * 0.5
        cpu += 3 * 0.2 * 0.6 * 0.5
    scaler.desired = 6
    decision = scaler.reset(10.0)
    assert decision is not None and (decision.previous, decision.desired) == (6, 3)
    assert decision.reason == "reset to the resting size before a rehearsal"
    assert scaler.capacity_per_instance == pytest.approx(0.2 / DEFAULT_CPU_PER_REQUEST_S)
    assert scaler.reset(11.0) is None  # already at rest


def with_queue(**queue: object) -> Topology:
    config = dev().model_dump(mode="json")
    topology = Topology.from_config(
        "dev",
        {
            "peakready:region": "eu-central-1",
            "peakready:forecast": config["forecast"],
            "peakready:app": config["app"],
            "peakready:lab": {"app_instances": 3},
            "peakready:queue": {
                "consumer_min_size": 2,
                "consumer_max_size": 4,
                "consumer_orders_per_s": 200,
                "max_backlog_age_s": 60,
                **queue,
            },
        },
        "test",
    )
    return topology


def test_the_lab_worker_policy_is_the_stacks_scaled_to_the_lab() -> None:
    topology = with_queue()
    assert topology.queue is not None
    # AWS tracks 200 orders/s x 60 s / 2 = 6,000 waiting per worker; the lab, 30x faster.
    assert topology.queue.backlog_per_worker == 6000
    lab = lab_backlog_policy(topology, minimum=3, slots=6)
    assert lab == BacklogPolicy(max_size=6, per_instance=200, scale_in_after_s=30.0)
    assert lab_backlog_policy(with_queue(consumer_max_size=20), 3, slots=6).max_size == 6
    assert lab_backlog_policy(dev(), 3, 6) is None  # no queue tier, no workers


BACKLOG = BacklogPolicy(max_size=6, per_instance=200, scale_in_after_s=30.0)


def test_the_operators_desired_capacity_applies_at_once_and_0_stops_whatever_waits() -> None:
    scaler = BacklogScaler(BACKLOG)
    first = scaler.size(0.0, backlog=0, requested=3, current=0)
    assert first is not None and (first.desired, first.reason) == (3, "desired capacity set")
    stop = scaler.size(1.0, backlog=5000, requested=0, current=3)
    assert stop is not None and stop.desired == 0
    assert scaler.size(2.0, backlog=5000, requested=0, current=0) is None  # stays stopped
    again = scaler.size(3.0, backlog=900, requested=3, current=0)
    assert again is not None and again.desired == 5  # back, and sized for what waits


def test_a_backlog_above_the_target_scales_out_at_once_up_to_the_maximum() -> None:
    scaler = BacklogScaler(BACKLOG)
    scaler.size(0.0, 0, 3, 0)
    assert scaler.size(1.0, backlog=600, requested=3, current=3) is None  # 200 each: on target
    out = scaler.size(2.0, backlog=601, requested=3, current=3)
    assert out is not None and (out.desired, out.metric, out.target) == (4, 601 / 3, 200.0)
    assert out.reason == "backlog per worker above the target"
    top = scaler.size(3.0, backlog=100_000, requested=3, current=4)
    assert top is not None and top.desired == 6
    assert scaler.size(4.0, backlog=100_000, requested=3, current=6) is None


def test_scale_in_waits_for_the_delay_and_never_goes_below_the_desired_capacity() -> None:
    scaler = BacklogScaler(BACKLOG)
    scaler.size(0.0, 0, 3, 0)
    assert scaler.size(1.0, backlog=0, requested=3, current=6) is None
    assert scaler.size(30.0, backlog=0, requested=3, current=6) is None  # 29 s: not yet
    assert scaler.size(30.5, backlog=900, requested=3, current=6) is None  # wants 5 now
    down = scaler.size(31.0, backlog=0, requested=3, current=6)
    assert down is not None and (down.desired, down.reason) == (
        3,
        "backlog per worker below the target",
    )


def test_without_a_recent_reading_the_group_holds_its_size() -> None:
    scaler = BacklogScaler(BACKLOG)
    scaler.size(0.0, 0, 3, 0)
    assert scaler.size(1.0, backlog=None, requested=3, current=5) is None
    assert scaler.size(100.0, backlog=None, requested=3, current=5) is None
