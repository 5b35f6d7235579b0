"""Statistics of repeated runs: min, median, nearest-rank p95, p95/median spread."""

from __future__ import annotations

import pytest

from peakready.bench.stats import percentile, summarise


def test_p95_of_five_runs_is_the_worst_run() -> None:
    assert percentile([4.0, 1.0, 3.0, 5.0, 2.0], 95) == 5.0


def test_p95_of_twenty_runs_is_the_nineteenth() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 95) == 19.0


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    spread = summarise([1.0, 2.0, 10.0, 20.0])
    assert spread is not None
    assert spread.median == 6.0


def test_summary_of_rtos() -> None:
    spread = summarise([19.4, 21.9, 20.1, 19.2, 26.0])
    assert spread is not None
    assert (spread.n, spread.min, spread.median, spread.p95, spread.max) == (
        5,
        19.2,
        20.1,
        26.0,
        26.0,
    )
    assert spread.spread == pytest.approx(26.0 / 20.1)


def test_spread_is_none_when_the_median_is_zero() -> None:
    spread = summarise([0.0, 0.0, 0.3])
    assert spread is not None
    assert spread.spread is None


def test_no_values_no_summary() -> None:
    assert summarise([]) is None


@pytest.mark.parametrize("q", [0, -5, 101])
def test_percentile_out_of_range_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="expected 0 < q <= 100"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
