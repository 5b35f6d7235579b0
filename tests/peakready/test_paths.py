"""Every path a user gives is checked before work starts: one line naming it, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from peakready import paths
from peakready.cli import app
from peakready.errors import PeakreadyError


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return {"file": a_file, "below_file": a_file / "sub", "locked": locked / "out"}


def _refused(args: list[str]) -> str:
    with pytest.raises(PeakreadyError) as caught:
        CliRunner().invoke(app, args, catch_exceptions=False)
    assert caught.value.exit_code == 2
    [line] = caught.value.lines
    return line


@pytest.mark.parametrize(
    ("place", "expected"),
    [("file", "is a file, expected a folder"), ("below_file", "is a file, expected a folder")],
)
def test_drill_report_dir_must_be_a_folder(
    places: dict[str, Path], place: str, expected: str
) -> None:
    line = _refused(["drill", "--dry-run", "--report-dir", str(places[place])])
    assert line.startswith(f"--report-dir {places[place]}") and expected in line


def test_an_empty_report_dir_is_not_the_current_folder() -> None:
    assert _refused(["drill", "--report-dir", ""]) == "--report-dir: empty, expected a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_report_dir_is_refused(places: dict[str, Path]) -> None:
    assert "not writable" in _refused(["drill", "--report-dir", str(places["locked"])])


def test_preview_out_must_be_a_file(tmp_path: Path) -> None:
    line = _refused(["preview", "--stack", "dev", "--out", str(tmp_path)])
    assert line == f"--out {tmp_path}: is a folder, expected a file"


def test_preview_baseline_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert (
        _refused(["preview", "--baseline", str(missing)]) == f"--baseline {missing}: no such file"
    )


def test_backup_drill_work_dir_must_be_a_folder(places: dict[str, Path]) -> None:
    line = _refused(["backup", "drill", "--work-dir", str(places["file"])])
    assert line == f"--work-dir {places['file']}: is a file, expected a folder"


def test_lab_dir_naming_a_file_is_refused(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(places["file"]))
    expected = f"PEAKREADY_LAB_DIR={places['file']}: {places['file']} is a file, expected a folder"
    assert _refused(["lab", "up"]) == expected
    status = CliRunner().invoke(app, ["lab", "status", "--json"])
    assert status.exit_code == 2 and expected in status.output


def test_a_folder_to_be_made_is_accepted_as_an_absolute_path(tmp_path: Path) -> None:
    made = paths.output_dir(tmp_path / "new" / "deeper", "--report-dir")
    assert made.is_absolute() and not made.exists()
