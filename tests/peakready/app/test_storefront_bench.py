"""One instance under a bounded local order load (opt-in: PEAKREADY_APP_BENCH=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from peakready.app import bench
from peakready.errors import PeakreadyError

if TYPE_CHECKING:
    from conftest import App, Helpers, Postgres

BENCH_APP_PORT = 23103


def test_bench_refuses_non_loopback_urls() -> None:
    with pytest.raises(PeakreadyError, match="--url: expected a loopback address"):
        bench.check_loopback("http://10.0.0.1:8080")


def test_bench_against_a_closed_port_fails_without_a_busy_loop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = bench.main(["--url", "http://127.0.0.1:23198", "--clients", "2", "--seconds", "0.5"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"] == 0
    assert 0 < summary["transport_errors"] <= 2 * (0.5 / 0.05 + 1)


@pytest.mark.lab
def test_bench_counts_what_the_database_holds(app_server: App, postgres: Postgres) -> None:
    postgres.execute(
        "UPDATE products SET stock = stock + 1000, initial_stock = initial_stock + 1000"
    )
    result = bench.run(app_server.url, clients=4, seconds=1, products=5, prefix="benchcheck")
    created = postgres.execute(
        "SELECT count(*) FROM orders WHERE idempotency_key LIKE %s", ("benchcheck-%",)
    )
    assert result.statuses[201] == created[0][0] > 10
    assert result.summary()["orders_created"] == created[0][0]
    assert result.errors == 0


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
    pg_before = postgres_cpu_seconds(postgres)
    client_before = cpu_seconds(os.getpid())
    result = bench.run(app.url, clients=clients, seconds=10)
    client_cpu = cpu_seconds(os.getpid()) - client_before
    summary = result.summary()
    requests = max(1, len(result.latencies))
    app_cpu = cpu_seconds(app.server.proc.pid) - cpu_before
    pg_cpu = postgres_cpu_seconds(postgres) - pg_before
    summary["app_cpu_ms_per_request"] = round(1000 * app_cpu / requests, 2)
    summary["postgres_cpu_ms_per_request"] = round(1000 * pg_cpu / requests, 2)
    summary["client_cpu_ms_per_request"] = round(1000 * client_cpu / requests, 2)
    summary["load_average_1m"] = os.getloadavg()[0]
    metrics = httpx.get(f"{app.url}/metrics").text
    summary["server_p50_ms_bucket"] = histogram_quantile(metrics, 0.50) * 1000
    summary["server_p99_ms_bucket"] = histogram_quantile(metrics, 0.99) * 1000
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


def postgres_cpu_seconds(postgres: Postgres) -> float:
    """CPU time of the postmaster's children (backends, WAL writer, ...): exited ones are
    counted by the kernel in the postmaster's cumulative children time."""
    pid = int((postgres.data / "postmaster.pid").read_text().splitlines()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                total += int(stat[11]) + int(stat[12])
    return total / os.sysconf("SC_CLK_TCK")


def histogram_quantile(metrics: str, q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` of POST /orders 201 (server side)."""
    prefix = 'storefront_http_request_duration_seconds_bucket{le="'
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith(prefix) and 'route="/orders"' in line and 'status="201"' in line:
            le = line[len(prefix) :].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1]
    return next(le for le, count in buckets if count >= q * total)
