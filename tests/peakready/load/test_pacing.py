"""Steady pacing: users started together spread over the period and keep their phase."""

import random

import pytest

from peakready.load.pacing import Pacer


def test_pacers_started_together_spread_over_the_period_and_keep_their_phase() -> None:
    rng = random.Random(13)
    pacers = [Pacer.started(0.5, now=100.0, rng=rng) for _ in range(8)]
    phases = [p.next_at - 100.0 for p in pacers]
    assert all(0.0 <= phase < 0.5 for phase in phases)
    assert max(phases) - min(phases) > 0.2  # spread over the period, not one burst
    for pacer, phase in zip(pacers, phases, strict=True):
        for n in range(1, 6):
            now = pacer.next_at + 0.01  # its request took 10 ms
            assert pacer.wait(now) == pytest.approx(0.49)
            assert pacer.next_at == pytest.approx(100.0 + phase + 0.5 * n)  # rate and phase


def test_a_request_slower_than_the_period_is_followed_at_once_without_catching_up() -> None:
    pacer = Pacer(period_s=0.5, next_at=10.0)
    assert pacer.wait(now=12.0) == 0.0
    assert pacer.wait(now=12.01) == pytest.approx(0.49)
