"""results.json format 1 and the Markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peakready.bench import report
from peakready.bench.failover import RunFigures, from_drill
from peakready.planner import requests_per_instance
from peakready.topology import Topology


def runs(rtos: list[float | None], lost: int = 0) -> list[RunFigures]:
    return [
        RunFigures("db-primary-loss", "bench", "passed", rto, requests=100, lost_orders=lost)
        for rto in rtos
    ]


def results(**storefront: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "stack": "dev",
        "started": "2026-11-22T01:00:00+00:00",
        "finished": "2026-11-22T01:19:00+00:00",
        "runs": 5,
        "host": {"cpus": 2},
        "failover": {"db-primary-loss": report.scenario_entry(runs([20.0, 21.0, 22.0]), 25.0)},
        "storefront": storefront,
        "wall_s": {
            "preview_prod": {
                "command": "peakready preview --stack prod",
                "wall_s": 3.2,
                "exit_code": 0,
                "log": "x",
            },
        },
    }


def test_scenario_entry_sums_counts_and_summarises_only_measured_rtos() -> None:
    entry = report.scenario_entry(runs([20.0, None, 30.0], lost=1), 25.0)
    assert entry["rto_s"]["n"] == 2
    assert entry["rto_s"]["median"] == 25.0
    assert entry["lost_orders"] == 3
    assert entry["passed_runs"] == 3
    assert len(entry["runs"]) == 3


def test_a_complete_result_validates() -> None:
    assert report.validate(results(requests_per_instance=180.0)) == []


def test_validation_names_what_is_missing_or_wrong() -> None:
    bad = results(requests_per_instance="fast")
    del bad["runs"]
    bad["failover"]["db-primary-loss"]["rto_s"].pop("p95")
    bad["wall_s"]["preview_prod"]["wall_s"] = None
    assert report.validate(bad) == [
        "missing key runs",
        "failover.db-primary-loss.rto_s: missing p95",
        "storefront.requests_per_instance: expected a number or null",
        "wall_s.preview_prod.wall_s: expected a number",
    ]


def test_table_lists_rto_spread_counts_and_the_aws_figure() -> None:
    table = report.markdown(results())
    row = next(line for line in table.splitlines() if line.startswith("| db-primary-loss"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:12] == [
        "db-primary-loss",
        "3",
        "3",
        "20.0",
        "21.0",
        "22.0",
        "1.05",
        "25.0",
        "0",
        "0",
        "0",
        "0",
    ]
    assert "RDS Multi-AZ instance" in cells[12]
    assert "| `peakready preview --stack prod` | 3.2 | 0 | ≤ 5.0 |" in table


def test_table_shows_the_throughput_ratio() -> None:
    storefront = {
        "objective_p99_ms": 100.0,
        "orders_per_s_haproxy": {"rate": 150.0, "p99_ms": 80.0, "spread": {"spread": 1.2}},
        "orders_per_s_direct_db": {"rate": 300.0, "p99_ms": 20.0, "spread": {"spread": 1.1}},
        "ratio": 0.5,
        "orders_search": {"concurrency": 4},
        "direct_db_search": {"concurrency": 16},
        "requests_per_instance": 210.0,
        "instance": "app-0",
        "instance_requests": {"rate": 210.0, "p99_ms": 90.0, "spread": None},
        "instance_search": {"concurrency": 2},
    }
    table = report.markdown(results(**storefront))
    assert "| orders through HAProxy | 150 | 80 | 1.20 | 4 |" in table
    # Each path at its own best level: the ceiling is the database's best, not its
    # figure at the storefront's concurrency.
    assert "| same order transaction straight to PostgreSQL | 300 | 20 | 1.10 | 16 |" in table
    assert "| **ratio** (target ≥ 0.5) | **0.50** |" in table
    assert "| requests per instance (app-0, drill mix) | 210 | 90 | — | 2 |" in table


def test_the_planner_reads_requests_per_instance_from_results(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results(requests_per_instance=123.4)))
    dev = Topology.load("dev")
    app = dev.app.model_copy(update={"requests_per_instance": None})
    topology = dev.model_copy(update={"app": app})
    figure, source = requests_per_instance(topology, path)
    assert figure == 123.4
    assert "results.json" in source


def test_drill_runs_are_reused_for_the_chosen_scenarios(tmp_path: Path) -> None:
    details = tmp_path / "details.json"
    details.write_text(
        json.dumps(
            {
                "scenarios": [
                    {
                        "name": "db-primary-loss",
                        "status": "passed",
                        "rto_s": 21.9,
                        "lost_orders": 0,
                        "duration_s": 73.6,
                        "reasons": [],
                        "path": "writes",
                    },
                    {"name": "backup-restore", "status": "passed", "rto_s": 21.6},
                ]
            }
        )
    )
    reused = from_drill(details, ["db-primary-loss", "az-power-loss"])
    assert list(reused) == ["db-primary-loss"]
    assert reused["db-primary-loss"].source == "drill"
    assert reused["db-primary-loss"].rto_s == 21.9
    assert from_drill(tmp_path / "missing.json", ["db-primary-loss"]) == {}


def test_the_sentinel_failover_gets_its_own_row() -> None:
    cache = [
        RunFigures("cache-primary-loss", "bench", "passed", 0.2, cache_failover_s=s)
        for s in (2.2, 2.4, 3.0)
    ]
    data = results()
    data["failover"] = {"cache-primary-loss": report.scenario_entry(cache, 5.0)}
    assert data["failover"]["cache-primary-loss"]["cache_failover_s"]["median"] == 2.4
    table = report.markdown(data)
    assert "| cache-primary-loss: Sentinel failover | 3 | | 2.2 | 2.4 | 3.0 | 1.25 | 5.0 |" in table


def test_the_back_office_outage_reports_order_p99_during_it_against_before_it() -> None:
    """Issue 14's target: order p99 during the outage within 10 % of steady state."""
    outage = [
        RunFigures(
            "backoffice-outage",
            "bench",
            "passed",
            0.1,
            order_p99_ms=during,
            baseline_order_p99_ms=before,
        )
        for during, before in ((22.0, 20.0), (30.0, 20.0), (20.0, 25.0), (40.0, None))
    ]
    data = results()
    data["failover"] = {"backoffice-outage": report.scenario_entry(outage, 5.0)}
    ratio = data["failover"]["backoffice-outage"]["order_p99_ratio"]
    assert (ratio["n"], ratio["min"], ratio["median"], ratio["max"]) == (3, 0.8, 1.1, 1.5)
    table = report.markdown(data)
    assert "| backoffice-outage: order p99 during the outage ÷ before it | 3 | | 0.80 " in table
    assert "**1.10** | 1.50 | 1.36 | ≤ 1.10 |" in table


def test_the_peak_table_checks_each_target_and_reports_the_generators_cost() -> None:
    from peakready.bench.peak import markdown, summary

    run = {
        "status": "passed",
        "reasons": [],
        "order_goodput": 1.0,
        "order_p99_ms": 120.0,
        "shed_p99_ms": 30.0,
        "timed_out": 0,
        "scale_out_s": 5.0,
        "generator_cpu_us_per_request": 450.0,
    }
    slow = {**run, "scale_out_s": 14.0, "shed_p99_ms": 80.0}
    peak = summary([run, run, slow], order_p99_objective_ms=250)
    assert peak["median"]["scale_out_s"] == 5.0
    assert peak["scale_out_s_range"] == [5.0, 14.0]
    assert peak["targets"]["scale-out median <= 10 s"] is True
    assert peak["targets"]["shed p99 <= 50 ms"] is False  # every run must meet it
    text = "\n".join(markdown(peak))
    assert "| **median** | 1.000 | 120 | 30 | | 5.0 | 450 | |" in text
    assert "| shed p99 <= 50 ms | **no** |" in text


def test_the_pipeline_table_shows_cost_drain_and_its_ratio_to_the_objective() -> None:
    pipeline = {
        "tier_pss_mib": 352.4,
        "lab_pss_mib": 1230.0,
        "tier_idle_cpu_percent": 2.7,
        "runs": [{"missing_deliveries": 0, "applied_twice": 0}] * 3,
        "drain_orders_per_s": {"n": 3, "min": 310.0, "median": 350.0, "max": 372.0},
        "lab_peak_orders_per_s": 20.0,
        "drain_ratio": 17.5,
        "drain_ratio_objective": 5.0,
    }
    table = report.markdown({"stack": "dev", "pipeline": pipeline})
    assert "| queue tier PSS (MiB) / whole lab | 352 / 1230 | lab ≤ 1536 |" in table
    assert "| 310 / 350 / 372 |" in table
    assert "forecast peak order rate (20/s) | **17.50** | ≥ 5.00 |" in table
    assert "| missing / applied twice, every run | 0 / 0 | 0 / 0 |" in table


def test_the_monitoring_table_shows_what_the_tier_adds_to_the_lab() -> None:
    monitoring = {
        "tier_pss_mib": 101.3,
        "lab_pss_mib": 1180.0,
        "tier_adds_pss_percent": 9.4,
        "tier_idle_cpu_percent": 3.1,
    }
    table = report.markdown({"stack": "dev", "monitoring": monitoring})
    assert "| PSS (MiB) / whole lab | 101 / 1180 | — |" in table
    assert "| PSS added to the rest of the lab | **9.4 %** | ≤ 10 % |" in table
    assert "| CPU, steady (% of one core) | 3.1 | — |" in table
    assert "monitoring tier" not in report.markdown({"stack": "dev"})
