"""Which load levels the throughput figures are confirmed at, against fake load steps.

The ceiling is the database's own best within the objective. Measured at the
storefront's level instead, it can be lower (more clients than the database's best only
queue on the hot products' row locks), and the ratio then flatters the storefront.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from peakready.bench import throughput
from peakready.bench.capacity import Step


def step(c: int, rate: float, p99_ms: float) -> Step:
    return Step(c, rate, p99_ms / 2, p99_ms, int(rate * 4), 0, 4.0)


def http_fake(port: int, c: int, make: Any, seconds: float) -> Step:
    """Through HAProxy: best at 32 clients (1,600/s), over 100 ms from 64 on."""
    return step(c, 50.0 * min(c, 32), 3.0 * c if c < 64 else 150.0)


def db_fake(connect: Any, order: Any, c: int, seconds: float) -> Step:
    """Straight to PostgreSQL: best at 16 clients (3,200/s), fewer orders/s beyond."""
    return step(c, 200.0 * c if c <= 16 else 3200.0 - 40.0 * (c - 16), 1.0 * c)


class FakeDatabase:
    def __init__(self, state: Any) -> None:
        pass

    def ensure_products(self) -> None:
        pass

    def connect(self) -> None:
        return None

    def order(self, conn: Any, i: int) -> bool:
        return True

    @contextmanager
    def broker_held(self, say: Any) -> Iterator[None]:  # a lab without a queue tier
        yield


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> throughput.Throughput:
    monkeypatch.setattr(throughput, "http_step", http_fake)
    monkeypatch.setattr(throughput, "db_step", db_fake)
    monkeypatch.setattr(throughput, "_Database", FakeDatabase)
    monkeypatch.setattr(throughput, "_instance", lambda state: {"id": "app-0", "port": 1})
    monkeypatch.setattr(throughput.cpu, "snapshot", lambda state: {})
    state: Any = SimpleNamespace(endpoints={"http": "http://127.0.0.1:20000"}, lab_dir=tmp_path)
    measured = throughput.measure(state, repeats=3)
    assert not (tmp_path / "scaling.suspended").exists()  # scaling resumed afterwards
    return measured


def test_each_path_is_confirmed_at_its_own_best_level(measured: throughput.Throughput) -> None:
    assert {s.concurrency for s in measured.confirm_http} == {32}
    assert {s.concurrency for s in measured.confirm_db} == {16}
    # 1,600 / 3,200, not 1,600 / 2,560 (the database at the storefront's 32 clients).
    assert measured.ratio() == pytest.approx(0.5)


def test_results_keep_both_searches(measured: throughput.Throughput) -> None:
    data = measured.as_dict()
    assert data["orders_search"]["concurrency"] == 32
    assert data["direct_db_search"]["concurrency"] == 16
    assert data["ratio"] == 0.5
