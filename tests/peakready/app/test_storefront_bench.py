"""One instance under a bounded local order load (opt-in: PEAKREADY_APP_BENCH=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from peakready.app import bench
from peakready.errors import PeakreadyError

if TYPE_CHECKING:
    from conftest import App, Helpers, Postgres

BENCH_APP_PORT = 23103


def test_bench_refuses_non_loopback_urls() -> None:
    with pytest.raises(PeakreadyError, match="--url: expected a loopback address"):
        bench.check_loopback("http://10.0.0.1:8080")


@pytest.mark.lab
@pytest.mark.skipif(os.environ.get("PEAKREADY_APP_BENCH") != "1", reason="PEAKREADY_APP_BENCH=1")
def test_one_instance_order_throughput(
    workdir: Path, postgres: Postgres, extra_apps: list[App], helpers: Helpers
) -> None:
    app = helpers.start_app(workdir, postgres, BENCH_APP_PORT, None, None, db_pool_max="10")
    extra_apps.append(app)
    postgres.execute(
        "UPDATE products SET stock = stock + 1000000, initial_stock = initial_stock + 1000000"
    )
    bench.run(app.url, clients=4, seconds=1, prefix="warmup")
    clients = int(os.environ.get("PEAKREADY_APP_BENCH_CLIENTS", "20"))
    assert app.server.proc is not None
    cpu_before = cpu_seconds(app.server.proc.pid)
    result = bench.run(app.url, clients=clients, seconds=10)
    summary = result.summary()
    app_cpu = cpu_seconds(app.server.proc.pid) - cpu_before
    summary["app_cpu_ms_per_request"] = round(1000 * app_cpu / max(1, len(result.latencies)), 2)
    print("\nbench:", json.dumps(summary))
    assert summary["transport_errors"] == 0
    assert set(result.statuses) == {201}
    created = postgres.execute(
        "SELECT count(*) FROM orders WHERE idempotency_key LIKE %s", ("bench-%",)
    )
    assert created[0][0] == result.statuses[201]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
