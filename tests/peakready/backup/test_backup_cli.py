"""``peakready backup drill --target aws``: the AWS restore drill's front door (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_world
import pytest
from typer.testing import CliRunner

from peakready.backup.cli import app
from peakready.errors import PeakreadyError

aws = aws_world.aws  # fixtures, used by name
world = aws_world.world


def _ledger(path: Path, acked: int = 3) -> Path:
    rows = [
        {"key": f"k{n}", "order_id": n, "product_id": 1, "quantity": 1, "acked_at": 1000.0 + n}
        for n in range(acked)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_aws_drill_runs_from_the_command_line_and_reports_its_reasons(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PEAKREADY_DB_PASSWORD", raising=False)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(world.outputs))
    args = ["drill", "--target", "aws", "--stack", "dev", "--work-dir", str(tmp_path)]
    args += ["--ledger", str(_ledger(tmp_path / "ledger.jsonl")), "--outputs-file", str(outputs)]

    answer = CliRunner().invoke(app, args, catch_exceptions=False)

    summary = json.loads((tmp_path / "backup-summary.json").read_text())
    assert answer.exit_code == 1
    assert summary["method"] == "snapshot" and summary["passed"] is False
    assert summary["reasons"] == [
        "database password: set the secret 'peakready_db_password' or the configuration key "
        "'peakready_db_password_secret_arn'"
    ]
    assert "needs a live account to prove" in answer.output


def test_the_aws_drill_needs_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(PeakreadyError, match=r"^--ledger: the AWS restore drill needs"):
        CliRunner().invoke(app, ["drill", "--target", "aws"], catch_exceptions=False)


def test_a_ledger_without_acknowledged_orders_is_refused(tmp_path: Path) -> None:
    empty = _ledger(tmp_path / "ledger.jsonl", acked=0)
    with pytest.raises(PeakreadyError, match="no acknowledged order in it"):
        CliRunner().invoke(
            app, ["drill", "--target", "aws", "--ledger", str(empty)], catch_exceptions=False
        )
