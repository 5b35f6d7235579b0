"""The throughput search against a fake latency function: where it stops, what it keeps."""

from __future__ import annotations

from collections.abc import Callable

from peakready.bench.capacity import Step, confirm_levels, confirmed, search


def fake(
    rate_per_client: float = 50.0,
    knee: int = 8,
    base_ms: float = 10.0,
    errors_at: int | None = None,
) -> Callable[[int], Step]:
    """A server that scales linearly up to ``knee`` clients, then only queues."""
    calls: list[int] = []

    def measure(c: int) -> Step:
        calls.append(c)
        rate = rate_per_client * min(c, knee)
        p99 = base_ms * max(1.0, c / knee) ** 2 * (1 + c / 10)
        errors = 50 if errors_at is not None and c >= errors_at else 0
        return Step(c, rate, p99 / 2, p99, int(rate * 4), errors, 4.0)

    measure.calls = calls  # type: ignore[attr-defined]
    return measure


def test_stops_at_the_first_step_over_the_objective_and_keeps_the_best_under_it() -> None:
    measure = fake()
    result = search(measure, objective_p99_ms=100.0, levels=(1, 2, 4, 8, 16, 32))
    # p99 at 16 clients: 10 * 4 * 2.6 = 104 ms > 100 → stop there
    assert measure.calls == [1, 2, 4, 8, 16]  # type: ignore[attr-defined]
    assert result.best is not None
    assert result.best.concurrency == 8
    assert result.best.rate == 400.0
    assert "p99 104 ms > 100 ms at 16" in result.stopped


def test_no_level_meets_the_objective() -> None:
    result = search(fake(base_ms=200.0), objective_p99_ms=100.0, levels=(1, 2, 4))
    assert result.best is None
    assert result.as_dict()["rate"] is None
    assert len(result.steps) == 1


def test_errors_stop_the_search_and_the_erroring_step_never_counts() -> None:
    result = search(fake(errors_at=4), objective_p99_ms=1000.0, levels=(1, 2, 4, 8))
    assert [s.concurrency for s in result.steps] == [1, 2, 4]
    assert result.best is not None and result.best.concurrency == 2
    assert result.stopped.startswith("errors")


def test_a_falling_rate_stops_the_search_past_the_knee() -> None:
    rates = {1: 100.0, 2: 200.0, 4: 150.0, 8: 300.0}

    def measure(c: int) -> Step:
        return Step(c, rates[c], 5.0, 10.0, int(rates[c] * 4), 0, 4.0)

    result = search(measure, objective_p99_ms=100.0, levels=(1, 2, 4, 8))
    assert [s.concurrency for s in result.steps] == [1, 2, 4]
    assert result.best is not None and result.best.rate == 200.0


def test_the_time_bound_stops_the_search() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def measure(c: int) -> Step:
        now[0] += 30.0
        return Step(c, 10.0 * c, 1.0, 2.0, 40 * c, 0, 4.0)

    result = search(measure, levels=(1, 2, 4, 8, 16), max_seconds=60.0, clock=clock)
    assert len(result.steps) == 3
    assert result.stopped == "time bound 60 s"


def test_every_level_meeting_the_objective_is_said() -> None:
    result = search(fake(base_ms=1.0), objective_p99_ms=100.0, levels=(1, 2))
    assert result.best is not None and result.best.concurrency == 2
    assert result.stopped == "all levels up to 2 met the objective"


def step(c: int, rate: float, p99: float) -> Step:
    return Step(c, rate, p99 / 2, p99, int(rate * 4), 0, 4.0)


def test_confirmation_starts_at_the_best_level_then_goes_down() -> None:
    result = search(
        {1: step(1, 80, 40), 2: step(2, 150, 50), 4: step(4, 300, 90), 8: step(8, 290, 130)}.get,  # type: ignore[arg-type]
        levels=(1, 2, 4, 8),
    )
    assert confirm_levels(result) == [4, 2, 1]
    assert confirm_levels(result, tries=2) == [4, 2]


def test_nothing_to_confirm_when_no_level_met_the_objective() -> None:
    result = search({1: step(1, 80, 140)}.get, levels=(1,))  # type: ignore[arg-type]
    assert confirm_levels(result) == []


def test_a_figure_is_confirmed_when_most_repeats_meet_the_objective() -> None:
    assert confirmed([step(4, 300, 90), step(4, 310, 95), step(4, 280, 120)], 100.0)
    assert not confirmed([step(4, 300, 90), step(4, 310, 105), step(4, 280, 120)], 100.0)
