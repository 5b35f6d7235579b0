"""Summary statistics of repeated measurements: min, median, p95 and the p95/median spread."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q ≤ 100): the smallest value with at least
    q % of the values at or below it. Conservative for few runs (p95 of 5 runs = the max)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q}: expected 0 < q <= 100")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return float(ordered[max(rank, 1) - 1])


@dataclass(frozen=True)
class Spread:
    """What repeated runs of one figure measured."""

    n: int
    min: float
    median: float
    p95: float
    max: float
    spread: float | None  # p95 / median; None when the median is 0

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarise(values: Sequence[float]) -> Spread | None:
    """The spread of ``values``; None when there are none."""
    if not values:
        return None
    median = float(statistics.median(values))
    p95 = percentile(values, 95)
    return Spread(
        n=len(values),
        min=float(min(values)),
        median=median,
        p95=p95,
        max=float(max(values)),
        spread=p95 / median if median > 0 else None,
    )
