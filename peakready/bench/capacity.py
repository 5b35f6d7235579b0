"""Find the highest throughput that still meets a latency objective, by stepping up load.

The search is closed-loop: ``measure(concurrency)`` runs a bounded load step at that many
concurrent clients and says what it achieved. Concurrency goes up level by level until
p99 crosses the objective, errors appear, or a bound (levels, wall time) is reached; the
answer is the best rate among the steps that met the objective.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Concurrency levels tried in order (bounded: the last one is the most ever offered).
LEVELS: tuple[int, ...] = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
#: A step with more failed requests than this share does not count as meeting the objective.
MAX_ERROR_RATIO = 0.01


@dataclass(frozen=True)
class Step:
    """One load step: its concurrency and what it achieved."""

    concurrency: int
    rate: float  # successful operations per second
    p50_ms: float
    p99_ms: float
    ok: int
    errors: int
    seconds: float

    @property
    def error_ratio(self) -> float:
        total = self.ok + self.errors
        return self.errors / total if total else 1.0

    def meets(self, p99_ms: float) -> bool:
        return self.ok > 0 and self.p99_ms <= p99_ms and self.error_ratio <= MAX_ERROR_RATIO

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in data.items()}


@dataclass
class Capacity:
    """The steps run and the best one within the objective (None if even one client missed)."""

    objective_p99_ms: float
    steps: list[Step] = field(default_factory=list)
    stopped: str = ""

    @property
    def best(self) -> Step | None:
        good = [s for s in self.steps if s.meets(self.objective_p99_ms)]
        return max(good, key=lambda s: s.rate) if good else None

    def as_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "objective_p99_ms": self.objective_p99_ms,
            "rate": round(best.rate, 1) if best else None,
            "concurrency": best.concurrency if best else None,
            "p99_ms": round(best.p99_ms, 1) if best else None,
            "stopped": self.stopped,
            "steps": [s.as_dict() for s in self.steps],
        }


def search(
    measure: Callable[[int], Step],
    objective_p99_ms: float = 100.0,
    levels: Sequence[int] = LEVELS,
    max_seconds: float = 90.0,
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[Step], None] = lambda _: None,
) -> Capacity:
    """Step concurrency up through ``levels`` until p99 crosses ``objective_p99_ms``.

    Also stops when the rate falls well below the best seen (past the knee: more clients
    only queue), or when ``max_seconds`` have passed.
    """
    result = Capacity(objective_p99_ms)
    started = clock()
    for level in levels:
        if clock() - started > max_seconds:
            result.stopped = f"time bound {max_seconds:g} s"
            break
        step = measure(level)
        result.steps.append(step)
        on_step(step)
        if step.p99_ms > objective_p99_ms:
            result.stopped = f"p99 {step.p99_ms:.0f} ms > {objective_p99_ms:g} ms at {level}"
            break
        if step.error_ratio > MAX_ERROR_RATIO:
            result.stopped = f"errors {step.error_ratio:.1%} at {level}"
            break
        best = result.best
        if best is not None and step.rate < 0.8 * best.rate:
            result.stopped = f"rate fell to {step.rate:.0f}/s at {level} (best {best.rate:.0f}/s)"
            break
    else:
        result.stopped = f"all levels up to {levels[-1]} met the objective"
    return result


def confirm_levels(result: Capacity, tries: int = 3) -> list[int]:
    """Levels to confirm the figure at: the best one, then the next lower ones that met
    the objective in the search (a knee measured once may not hold on a second look)."""
    best = result.best
    if best is None:
        return []
    good = sorted(
        {s.concurrency for s in result.steps if s.meets(result.objective_p99_ms)}, reverse=True
    )
    return [c for c in good if c <= best.concurrency][:tries]


def confirmed(steps: Sequence[Step], objective_p99_ms: float) -> bool:
    """Whether most of the repeated steps met the objective."""
    return sum(s.meets(objective_p99_ms) for s in steps) * 2 > len(steps)
