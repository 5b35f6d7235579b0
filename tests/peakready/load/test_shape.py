"""Peak load profiles from the stack's forecast, scaled to the lab's capacity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peakready.errors import PeakreadyError
from peakready.load.shape import forecast_mix, lab_capacity_per_s, peak_profile
from peakready.topology import Topology


@pytest.fixture
def prod() -> Topology:
    return Topology.load("prod")


def test_the_mix_is_the_forecasts(prod: Topology) -> None:
    mix = forecast_mix(prod)
    f = prod.forecast
    assert mix["order"] == pytest.approx(f.orders_per_s / f.requests_per_s)
    assert mix["search"] == pytest.approx(f.search_share)
    assert sum(mix.values()) == pytest.approx(1.0)


def test_the_forecast_peak_maps_onto_the_lab_capacity_times_the_surge(prod: Topology) -> None:
    profile = peak_profile(prod, capacity_per_s=1000, surge=1.5)
    assert profile.peak_per_s == pytest.approx(1500)
    assert profile.baseline_per_s == pytest.approx(75)
    assert profile.rate_at(0) == pytest.approx(75)
    assert profile.rate_at(profile.baseline_s + profile.ramp_s / 2) == pytest.approx(787.5)
    assert profile.rate_at(profile.peak_at_s + 1) == pytest.approx(1500)
    assert profile.rate_at(profile.duration_s) == 0.0  # bounded in time


def test_a_window_scales_by_its_own_forecast(prod: Topology) -> None:
    window = prod.peak_windows[0]
    profile = peak_profile(prod, capacity_per_s=1000, surge=1.0, window=window.name)
    assert profile.peak_per_s == pytest.approx(
        1000 * window.requests_per_s / prod.forecast.requests_per_s
    )


def test_a_flash_sale_multiplies_orders_on_the_hot_products_at_the_peak(prod: Topology) -> None:
    profile = peak_profile(prod, capacity_per_s=1000, flash_k=10, hot_products=1)
    before = profile.rates_at(profile.peak_at_s - 1)
    during = profile.rates_at(profile.peak_at_s + 1)
    assert before["hot_order"] == 0
    assert during["hot_order"] == pytest.approx(9 * during["order"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"surge": 0}, "surge 0: expected more than 0"),
        ({"surge": float("inf")}, "surge inf"),
        ({"window": "nope"}, "peak window 'nope': not in the stack"),
        ({"hold_s": 99999}, "expected at most 3600"),
        ({"capacity_per_s": 1e9}, "<= 50000"),
        ({"flash_k": 1.0}, "flash sale: expected 1 < k"),
    ],
)
def test_a_profile_out_of_bounds_is_one_line(
    prod: Topology, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"capacity_per_s": 1000, **kwargs}
    with pytest.raises(PeakreadyError, match=message):
        peak_profile(prod, **args)  # type: ignore[arg-type]


def test_the_lab_capacity_comes_from_the_bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = Topology.load("dev")
    monkeypatch.setenv("PEAKREADY_BENCH_RESULTS", str(tmp_path / "missing.json"))
    assert lab_capacity_per_s(dev) is None
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"storefront": {"requests_per_instance": 950.0}}))
    monkeypatch.setenv("PEAKREADY_BENCH_RESULTS", str(results))
    capacity = lab_capacity_per_s(dev)
    assert capacity is not None
    assert capacity[0] == pytest.approx(950.0 * dev.lab.app_instances)
