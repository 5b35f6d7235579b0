"""The command line as a user meets it: one line per mistake, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GOOD: dict[str, object] = {
    "peakready:region": "eu-central-1",
    "peakready:forecast": {"requests_per_s": 100, "orders_per_s": 10},
}

BROKEN = {
    "unknown-key": ({"peakready:colour": "blue"}, "peakready:colour: unknown key"),
    "wrong-type": ({"peakready:app": {"max_size": "many"}}, 'peakready:app.max_size: got "many"'),
    "one-az": ({"peakready:availability_zones": 1}, "peakready:availability_zones: got 1"),
    "window-backwards": (
        {
            "peakready:peak_windows": [
                {
                    "name": "bf",
                    "start": "2026-11-28T00:00",
                    "end": "2026-11-27T00:00",
                    "requests_per_s": 5,
                }
            ]
        },
        "peakready:peak_windows[0]: end 2026-11-27T00:00:00 must be after start",
    ),
    "negative-size": ({"peakready:cache": {"replicas": -1}}, "peakready:cache.replicas: got -1"),
}


def run_cli(*args: str, stacks: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if stacks is not None:
        env["PEAKREADY_STACKS_DIR"] = str(stacks)
    return subprocess.run(
        [sys.executable, "-m", "peakready.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_stack_file_is_one_line_and_nonzero(case: str, tmp_path: Path) -> None:
    overrides, expected = BROKEN[case]
    (tmp_path / f"Pulumi.{case}.yaml").write_text(yaml.safe_dump({"config": {**GOOD, **overrides}}))
    result = run_cli("plan", "--stack", case, stacks=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"peakready: error: {tmp_path}/Pulumi.{case}.yaml: ")
    assert expected in lines[0]


def test_unknown_stack_is_one_line() -> None:
    result = run_cli("plan", "--stack", "nonesuch")
    assert result.returncode == 2
    assert result.stderr.startswith("peakready: error: unknown stack 'nonesuch'")
    assert "Traceback" not in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = run_cli("plan", "--colour", "blue")
    assert result.returncode == 2
    assert "No such option: --colour" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("plan", "preview", "lab", "drill"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["drill", "--remote-workers", "2"],
            "peakready: error: --remote-workers/--master-bind: the lab's load stays on 127.0.0.1",
        ),
        (
            ["drill", "--master-bind", "10.0.0.5:5557"],
            "peakready: error: --remote-workers/--master-bind: the lab's load stays on 127.0.0.1",
        ),
        (
            ["drill", "--target", "aws", "--master-bind", "nohost"],
            "peakready: error: --master-bind 'nohost': expected HOST:PORT",
        ),
        (
            ["load", "worker", "--master", "10.0.0.5:99999"],
            "peakready: error: --master '10.0.0.5:99999': expected HOST:PORT",
        ),
    ],
)
def test_distributed_load_options_are_checked_before_anything_starts(
    args: list[str], message: str
) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr
