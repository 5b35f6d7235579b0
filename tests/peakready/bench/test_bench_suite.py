"""The bench's own run: its time budget counts every phase, the last one too."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from peakready.bench import suite
from peakready.topology import Topology


def bench_of(tmp_path: Path, budget_s: float) -> suite._Bench:
    options = suite.Options(
        skip=set(suite.PHASES) - {"monitoring"}, out=tmp_path / "results.json", budget_s=budget_s
    )
    return suite._Bench(options, Topology.load("dev"), tmp_path, Console(file=io.StringIO()))


@pytest.fixture
def slow_last_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab is there, and the last phase (monitoring) takes 60 s."""

    def monitoring(self: suite._Bench, say: object) -> None:
        self.t0 -= 60.0

    monkeypatch.setattr(suite._Bench, "_ensure_lab", lambda self, say: None)
    monkeypatch.setattr(suite._Bench, "_monitoring", monitoring)


@pytest.mark.usefixtures("slow_last_phase")
def test_a_bench_over_budget_in_its_last_phase_says_so(tmp_path: Path) -> None:
    bench = bench_of(tmp_path, budget_s=30.0)
    bench.all()
    assert [n for n in bench.results["notes"] if "budget" in n] == [
        "bench took 60 s, over the 30 s budget"
    ]


@pytest.mark.usefixtures("slow_last_phase")
def test_a_bench_within_budget_has_no_note(tmp_path: Path) -> None:
    bench = bench_of(tmp_path, budget_s=120.0)
    bench.all()
    assert bench.results["notes"] == []
