"""Steady pacing on a phase of one's own, for the generator's steady users.

Locust's ``constant_throughput`` paces a user from the moment it is spawned, so the
users spawned together keep one phase: the drill's 40 requests/s arrived in bursts of
5-7 at the same millisecond, which filled an instance at once when another was lost
(``app-instance-loss`` failed half its runs on a search shed). A :class:`Pacer` starts
at a random point of its first period and keeps that phase.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Pacer:
    """One request per ``period_s``, the next at ``next_at`` (monotonic seconds)."""

    period_s: float
    next_at: float

    @classmethod
    def started(cls, period_s: float, now: float, rng: random.Random | None = None) -> Pacer:
        """A pacer whose first request is at a random point of the period after ``now``."""
        return cls(period_s, now + (rng or random).uniform(0.0, period_s))

    def wait(self, now: float) -> float:
        """Seconds from ``now`` to the next request, one period after the last; 0 when a
        request took longer than the period (no catching up)."""
        self.next_at = max(self.next_at + self.period_s, now)
        return self.next_at - now
