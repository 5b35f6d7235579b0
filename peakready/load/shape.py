"""Peak load profiles derived from the stack: what a sales peak looks like, scaled to a lab.

A :class:`PeakProfile` is built from the stack's ``forecast`` (or one peak window's) and
its mix of orders, product reads and searches: a baseline, a ramp to ``surge`` x the
forecast peak, a hold there, and optionally a flash-sale spike of ``k`` x on a few hot
products. It is an arrival-rate profile (open model, like k6's ``ramping-arrival-rate``):
requests keep arriving when the system slows down, as they do at a real peak.

On the lab the forecast peak is mapped onto the lab's measured capacity (``make bench``:
requests/s per instance x the lab's instances), so that ``surge=1.5`` offers 1.5x what
the lab can serve, as 1.5x the forecast would offer to the stack. Nothing here sends a
request; the load generator follows :meth:`PeakProfile.rates_at`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from peakready.errors import PeakreadyError
from peakready.load.records import PROFILE_FILE
from peakready.planner import measured_requests_per_instance
from peakready.topology import Topology

#: Hard bounds of any profile: it is a rehearsal, bounded in time and rate.
MAX_DURATION_S = 3600.0
MAX_RATE_PER_S = 50_000.0
KINDS = ("order", "product", "search")


@dataclass(frozen=True)
class FlashSale:
    """From ``at_s`` for ``duration_s``: orders on ``hot_products`` arrive ``k`` x faster."""

    at_s: float
    duration_s: float
    k: float
    hot_products: int = 1


@dataclass(frozen=True)
class PeakProfile:
    """Total arrival rate over time, split by the forecast's mix."""

    baseline_per_s: float
    peak_per_s: float
    baseline_s: float
    ramp_s: float
    hold_s: float
    mix: dict[str, float]  # kind → fraction of requests, summing to 1
    flash: FlashSale | None = None
    source: str = ""  # where the scale came from (the bench file, or "given")

    def __post_init__(self) -> None:
        if not 0 < self.baseline_per_s <= self.peak_per_s <= MAX_RATE_PER_S:
            raise PeakreadyError(
                f"peak profile: expected 0 < baseline {self.baseline_per_s:g} <= peak "
                f"{self.peak_per_s:g} <= {MAX_RATE_PER_S:g} requests/s"
            )
        if min(self.baseline_s, self.ramp_s, self.hold_s) < 0 or self.duration_s <= 0:
            raise PeakreadyError("peak profile: baseline, ramp and hold must not be negative")
        if self.duration_s > MAX_DURATION_S:
            raise PeakreadyError(
                f"peak profile: {self.duration_s:g} s, expected at most {MAX_DURATION_S:g} s"
            )
        if set(self.mix) != set(KINDS) or not math.isclose(sum(self.mix.values()), 1.0):
            raise PeakreadyError(f"peak profile: mix {self.mix} must split 1 over {KINDS}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeakProfile:
        """A profile from :meth:`as_dict` (JSON); a malformed one raises PeakreadyError."""
        try:
            flash = data.get("flash")
            return cls(
                **{k: v for k, v in data.items() if k != "flash"},
                flash=FlashSale(**flash) if flash else None,
            )
        except TypeError as exc:
            raise PeakreadyError(f"peak profile: {exc}") from None

    @property
    def duration_s(self) -> float:
        return self.baseline_s + self.ramp_s + self.hold_s

    @property
    def peak_at_s(self) -> float:
        """When the ramp reaches the peak (the top of the ramp)."""
        return self.baseline_s + self.ramp_s

    def rate_at(self, t: float) -> float:
        """Total arrival rate (requests/s) at ``t`` seconds; 0 outside the profile."""
        if t < 0 or t >= self.duration_s:
            return 0.0
        if t < self.baseline_s:
            return self.baseline_per_s
        if t < self.peak_at_s:
            done = (t - self.baseline_s) / self.ramp_s
            return self.baseline_per_s + done * (self.peak_per_s - self.baseline_per_s)
        return self.peak_per_s

    def rates_at(self, t: float) -> dict[str, float]:
        """Arrival rate per kind at ``t``; ``"hot_order"`` carries the flash sale's extra
        orders on the hot products (0 outside the spike)."""
        total = self.rate_at(t)
        rates = {kind: total * share for kind, share in self.mix.items()}
        flash = self.flash
        hot = 0.0
        if flash is not None and flash.at_s <= t < flash.at_s + flash.duration_s and total:
            hot = rates["order"] * (flash.k - 1)
        rates["hot_order"] = hot
        return rates

    def requests(self) -> float:
        """Requests the whole profile offers (for bounds and progress)."""
        step = 0.5
        return sum(
            sum(self.rates_at(i * step).values()) * step
            for i in range(math.ceil(self.duration_s / step))
        )


@dataclass(frozen=True)
class StartedProfile:
    """A run's ``profile.json``: when its load started, the profile, the hot products."""

    started: float
    profile: PeakProfile
    hot_products: list[int]

    @property
    def end(self) -> float:
        return self.started + self.profile.duration_s


def read_started_profile(run_dir: Path) -> StartedProfile:
    """The peak profile the run's generator follows; PeakreadyError when there is none."""
    path = run_dir / PROFILE_FILE
    try:
        data = json.loads(path.read_text())
        profile = PeakProfile.from_dict(data["profile"])
        hot = [int(p) for p in data.get("hot_products") or []]
        return StartedProfile(float(data["started"]), profile, hot)
    except (OSError, ValueError, KeyError, TypeError, PeakreadyError) as exc:
        raise PeakreadyError(f"no peak load runs here ({path}: {exc})") from None


def forecast_mix(topology: Topology) -> dict[str, float]:
    """The forecast's split of requests: orders, searches, and product reads the rest."""
    forecast = topology.forecast
    orders = min(forecast.orders_per_s / forecast.requests_per_s, 1.0)
    search = min(forecast.search_share, 1.0 - orders)
    return {"order": orders, "product": 1.0 - orders - search, "search": search}


def lab_capacity_per_s(topology: Topology) -> tuple[float, str] | None:
    """Requests/s the lab serves (``make bench``'s per-instance figure x the lab's
    instances), and its source; None when it has not been measured."""
    measured = measured_requests_per_instance()
    if measured is None:
        return None
    per_instance, path = measured
    instances = topology.lab.app_instances
    return per_instance * instances, f"{path.name}: {per_instance:g}/s x {instances} instances"


def peak_profile(
    topology: Topology,
    *,
    capacity_per_s: float,
    source: str = "given",
    window: str | None = None,
    surge: float = 1.5,
    baseline_fraction: float = 0.05,
    baseline_s: float = 20.0,
    ramp_s: float = 60.0,
    hold_s: float = 60.0,
    flash_k: float | None = None,
    hot_products: int = 1,
) -> PeakProfile:
    """The profile of ``topology``'s peak (or of its peak ``window``), scaled so that
    the forecast peak is ``capacity_per_s`` (the lab's capacity)."""
    if not 0 < surge <= 20:
        raise PeakreadyError(f"surge {surge:g}: expected more than 0 and at most 20")
    if not 0 < baseline_fraction <= 1:
        raise PeakreadyError(f"baseline_fraction {baseline_fraction:g}: expected 0 to 1")
    if window is not None:
        chosen = next((w for w in topology.peak_windows if w.name == window), None)
        if chosen is None:
            known = ", ".join(w.name for w in topology.peak_windows) or "none"
            raise PeakreadyError(f"peak window {window!r}: not in the stack (known: {known})")
        scale_to = chosen.requests_per_s / topology.forecast.requests_per_s
    else:
        scale_to = 1.0
    peak = capacity_per_s * scale_to * surge
    flash = None
    if flash_k is not None:
        if not 1 < flash_k <= 1000 or not 1 <= hot_products <= 100:
            raise PeakreadyError("flash sale: expected 1 < k <= 1000 and 1 to 100 hot products")
        flash = FlashSale(baseline_s + ramp_s, hold_s / 2, flash_k, hot_products)
    return PeakProfile(
        baseline_per_s=peak * baseline_fraction,
        peak_per_s=peak,
        baseline_s=baseline_s,
        ramp_s=ramp_s,
        hold_s=hold_s,
        mix=forecast_mix(topology),
        flash=flash,
        source=source,
    )
