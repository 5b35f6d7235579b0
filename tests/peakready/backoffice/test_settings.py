"""The back-office worker's settings and its command line: bad input is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from peakready.backoffice.settings import load_settings
from peakready.errors import PeakreadyError

URL = "amqp://peakready@127.0.0.1:20004/%2F"


def test_settings_come_from_the_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "backoffice.env"
    env.write_text(
        f"PEAKREADY_BACKOFFICE_QUEUE_URL={URL}\nPEAKREADY_BACKOFFICE_QUEUE_PASSWORD=pw\n"
        "PEAKREADY_BACKOFFICE_QUEUE_NAME=orders-x\nPEAKREADY_BACKOFFICE_QUEUE_MAX_LENGTH=5\n"
    )
    monkeypatch.setenv("PEAKREADY_BACKOFFICE_PORT", "20023")  # the environment wins
    settings = load_settings(env)
    assert (settings.port, settings.queue().name, settings.queue().max_length) == (
        20023,
        "orders-x",
        5,
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([f"QUEUE_URL={URL}"], "PEAKREADY_BACKOFFICE_QUEUE_PASSWORD: required"),
        (["QUEUE_URL=http://x", "QUEUE_PASSWORD=p"], "PEAKREADY_BACKOFFICE_QUEUE_URL: expected"),
        ([f"QUEUE_URL={URL}", "QUEUE_PASSWORD=p", "PORT=0"], "PEAKREADY_BACKOFFICE_PORT: Input"),
        ([f"QUEUE_URL={URL}", "QUEUE_PASSWORD=p", "PREFETCH=x"], "PEAKREADY_BACKOFFICE_PREFETCH"),
    ],
)
def test_a_bad_setting_names_its_variable(tmp_path: Path, lines: list[str], message: str) -> None:
    env = tmp_path / "backoffice.env"
    env.write_text("".join(f"PEAKREADY_BACKOFFICE_{line}\n" for line in lines))
    with pytest.raises(PeakreadyError, match=message):
        load_settings(env)


def test_the_program_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peakready.backoffice", "--env-file", str(tmp_path / "none.env")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"peakready-backoffice: error: --env-file: {tmp_path / 'none.env'} is not a file"
    ]
