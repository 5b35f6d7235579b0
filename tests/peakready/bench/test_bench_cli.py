"""``python -m peakready.bench`` options: defaults and one-line errors."""

from __future__ import annotations

import pytest

from peakready.bench import SCENARIOS
from peakready.bench.__main__ import main, parse


def test_defaults_are_three_runs_of_every_failover_scenario() -> None:
    options = parse([])
    assert options.runs == 3
    assert options.scenarios == list(SCENARIOS)
    assert options.budget_s == 1500.0


def test_scenarios_and_skips_are_selectable() -> None:
    options = parse(["--runs", "7", "--scenario", "db-primary-loss", "--skip", "drill"])
    assert (options.runs, options.scenarios, options.skip) == (7, ["db-primary-loss"], {"drill"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runs", "0"], "bench: error: --runs 0: expected 1..50"),
        (["--scenario", "meteor"], "bench: error: --scenario 'meteor': expected one of"),
        (["--skip", "coffee"], "bench: error: --skip 'coffee': expected one of"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1
