"""DESIGN §9: protected stacks, freeze windows, dry runs, bad scenario names."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from peakready.drill import safety
from peakready.errors import PeakreadyError
from peakready.topology import SCENARIOS, Topology


def topology(**extra) -> Topology:
    config = {"region": "eu-central-1", "forecast": {"requests_per_s": 10, "orders_per_s": 1}}
    return Topology.from_config("t", {**config, **extra}, "test")


FREEZE = {
    "freeze_windows": [
        {
            "start": "2026-11-20T00:00",
            "end": "2026-11-30T00:00",
            "timezone": "UTC",
            "reason": "singles day",
        }
    ]
}


def test_a_protected_stack_refuses_a_destructive_drill() -> None:
    with pytest.raises(PeakreadyError, match="protected: refusing a destructive drill"):
        safety.check(topology(protected=True), dry_run=False, allow_protected=False)


def test_a_protected_stack_allows_it_when_explicitly_allowed_or_dry() -> None:
    safety.check(
        topology(protected=True),
        dry_run=False,
        allow_protected=True,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    safety.check(topology(protected=True), dry_run=True, allow_protected=False)


def test_a_freeze_window_refuses_a_drill_inside_it_only() -> None:
    inside = datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(PeakreadyError, match="freeze window \\(singles day"):
        safety.check(topology(**FREEZE), dry_run=False, allow_protected=True, now=inside)
    safety.check(
        topology(**FREEZE),
        dry_run=False,
        allow_protected=False,
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    safety.check(topology(**FREEZE), dry_run=True, allow_protected=False, now=inside)


def test_scenarios_run_in_design_order_and_unknown_names_are_refused() -> None:
    assert safety.choose(None) == list(SCENARIOS)
    assert safety.choose(["db-primary-loss", "app-instance-loss"]) == [
        "app-instance-loss",
        "db-primary-loss",
    ]
    with pytest.raises(PeakreadyError, match="--scenario 'db-loss': expected one of"):
        safety.choose(["db-loss"])


def test_cli_refuses_a_protected_stack_in_one_line(tmp_path: Path, monkeypatch) -> None:
    stack = {
        "config": {
            "peakready:region": "eu-central-1",
            "peakready:protected": True,
            "peakready:forecast": {"requests_per_s": 10, "orders_per_s": 1},
        }
    }
    (tmp_path / "Pulumi.vault.yaml").write_text(yaml.safe_dump(stack))
    monkeypatch.setenv("PEAKREADY_STACKS_DIR", str(tmp_path))
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "peakready.cli",
            "drill",
            "--stack",
            "vault",
            "--report-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "peakready: error: stack vault is protected: refusing a destructive drill "
        "(use --dry-run, or --allow-protected if you really mean it)"
    ]
    assert not (tmp_path / "r").exists()


def test_a_dry_run_experiment_runs_probes_only() -> None:
    from peakready.drill.runner import experiment_for

    full = experiment_for("db-primary-loss", dry_run=False)
    dry = experiment_for("db-primary-loss", dry_run=True)
    assert any(a["type"] == "action" for a in full["method"])
    assert all(a["type"] == "probe" for a in dry["method"])
    assert dry["rollbacks"] == [] and "controls" not in dry  # no fault, no load
    names = [p["name"] for p in dry["steady-state-hypothesis"]["probes"]]
    assert "orders-accepted" not in names and "ledger-consistent" in names
    assert "controls" in full  # the full one is untouched


def test_a_dry_run_without_a_lab_starts_nothing_and_says_what_a_run_would_do(
    tmp_path, monkeypatch
) -> None:
    import io

    from rich.console import Console

    from peakready import drill

    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path / "lab"))
    out = io.StringIO()
    report_dir = tmp_path / "report"
    code = drill.run(
        "lab",
        "prod",
        ["app-instance-loss"],
        report_dir,
        dry_run=True,
        console=Console(file=out, width=300),
    )
    text = out.getvalue()
    assert code == 0
    assert "a real run would be refused: stack prod is protected" in text
    assert "a real run would rehearse app-instance-loss" in text
    assert "no lab of stack prod runs" in text
    assert not (tmp_path / "lab").exists() and not report_dir.exists()
