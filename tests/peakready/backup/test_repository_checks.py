"""Reading a pgBackRest repository directly: WAL gaps, truncated files, the RPO policy."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from peakready.backup.lab import _drill_lock, _recovery_failure
from peakready.backup.pgbackrest import ArchiveCheck, BackupInfo, PgBackRest, Segment
from peakready.backup.rpo import covered_until, gap_text, rpo_policy
from peakready.errors import PeakreadyError
from peakready.topology import Objective


@pytest.fixture
def repo(tmp_path: Path) -> PgBackRest:
    config = tmp_path / "pgbackrest.conf"
    config.write_text(
        f"[global]\nrepo1-path={tmp_path / 'r1'}\nrepo2-path={tmp_path / 'r2'}\n\n"
        f"[peakready]\npg1-path={tmp_path / 'pg'}\n"
    )
    return PgBackRest(config, "peakready")


def archive(pgbr: PgBackRest, names: list[str], mtime: float = 1_000_000.0) -> None:
    for i, name in enumerate(names):
        folder = pgbr.archive_dir(1) / "15-1" / name[:16]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{'a' * 40}.gz"
        path.write_bytes(b"x")
        os.utime(path, (mtime + i, mtime + i))


def seg(n: int, timeline: int = 1) -> str:
    return Segment.name_at(timeline, n)


def test_config_without_repositories_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "pgbackrest.conf"
    config.write_text("[global]\nlog-path=/tmp\n")
    with pytest.raises(PeakreadyError) as caught:
        PgBackRest(config, "peakready")
    assert caught.value.lines == [f"pgBackRest config {config}: no repoN-path set"]


def test_segment_names_roll_over_into_the_next_log() -> None:
    assert Segment.name_at(1, 0xFF) == "0000000100000000000000FF"
    assert Segment.name_at(1, 0x100) == "000000010000000100000000"
    assert Segment.parse("000000020000000100000003-" + "f" * 40 + ".gz") == Segment(2, 1, 3)
    assert Segment.parse("000000010000000000000002.00000028.backup") is None


def test_contiguous_archive_has_no_gap(repo: PgBackRest) -> None:
    archive(repo, [seg(n) for n in range(2, 9)])
    check = repo.check_archive(1, seg(2))
    assert check.ok and check.missing == []
    assert (check.last, check.last_contiguous) == (seg(8), seg(8))


def test_removed_segment_is_named_with_the_gap(repo: PgBackRest) -> None:
    archive(repo, [seg(n) for n in (2, 3, 4, 6, 7)])
    check = repo.check_archive(1, seg(2))
    assert check.missing == [seg(5)]
    assert check.last_contiguous == seg(4)
    assert gap_text(check) == (
        f"WAL gap: 1 segment(s) missing from the archive: {seg(5)}"
        f" (archive runs from {seg(2)} to {seg(7)})"
    )


def test_segments_before_the_backup_do_not_matter(repo: PgBackRest) -> None:
    archive(repo, [seg(n) for n in (1, 5, 6)])
    assert repo.check_archive(1, seg(5)).ok


def test_a_failover_continues_the_archive_on_the_new_timeline(repo: PgBackRest) -> None:
    archive(repo, [seg(3), seg(4), seg(5, timeline=2), seg(6, timeline=2)])
    assert repo.check_archive(1, seg(3)).ok


def test_missing_segment_up_to_the_one_the_drill_switched(repo: PgBackRest) -> None:
    archive(repo, [seg(2), seg(3)])
    check = repo.check_archive(1, seg(2), last=seg(5))
    assert check.missing == [seg(4), seg(5)]


def write_backup(pgbr: PgBackRest, label: str, files: dict[str, bytes], **extra: object) -> Path:
    folder = pgbr.backup_dir(1) / label
    lines = ["[backup:option]", 'option-compress-type="gz"', "", "[target:file]"]
    for name, data in files.items():
        entry = {"checksum": "0" * 40, "repo-size": len(data), "size": 8192, **extra}
        lines.append(f"{name}={json.dumps(entry)}")
        path = folder / f"{name}.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / "backup.manifest").write_text("\n".join(lines) + "\n")
    return folder


def test_whole_backup_has_no_problem(repo: PgBackRest) -> None:
    write_backup(repo, "20261122-010000F", {"pg_data/base/1/1259": b"a" * 100})
    assert repo.check_backup_files(1, "20261122-010000F") == []


def test_truncated_and_missing_files_are_named(repo: PgBackRest) -> None:
    folder = write_backup(
        repo,
        "20261122-010000F",
        {"pg_data/base/1/1259": b"a" * 100, "pg_data/global/1262": b"b" * 50},
    )
    (folder / "pg_data/base/1/1259.gz").write_bytes(b"a" * 40)
    (folder / "pg_data/global/1262.gz").unlink()
    assert repo.check_backup_files(1, "20261122-010000F") == [
        "backup 20261122-010000F: pg_data/base/1/1259.gz truncated (40 of 100 bytes)",
        "backup 20261122-010000F: pg_data/global/1262.gz missing",
    ]


def test_a_differential_checks_files_in_the_backup_it_references(repo: PgBackRest) -> None:
    full = write_backup(repo, "20261122-010000F", {"pg_data/base/1/1259": b"a" * 100})
    write_backup(
        repo,
        "20261122-010000F_20261122-020000D",
        {"pg_data/base/1/1259": b"a" * 100},
        reference="20261122-010000F",
    )
    (full / "pg_data/base/1/1259.gz").write_bytes(b"")
    assert repo.check_backup_files(1, "20261122-010000F_20261122-020000D") == [
        "backup 20261122-010000F: pg_data/base/1/1259.gz truncated (0 of 100 bytes)"
    ]


def test_missing_manifest_is_named(repo: PgBackRest) -> None:
    assert repo.check_backup_files(1, "20261122-030000F") == [
        "backup 20261122-030000F: backup.manifest missing"
    ]


def test_recovery_that_stops_short_of_the_target_names_the_missing_segment() -> None:
    log = [
        'LOG:  restored log file "000000010000000000000004" from archive',
        "INFO: unable to find 000000010000000000000005 in the archive",
        "FATAL:  recovery ended before configured recovery target was reached",
    ]
    assert _recovery_failure(log) == (
        "point-in-time recovery ended before the recovery target was reached: WAL is missing"
        " from the archive; last WAL segment not found in the archive: 000000010000000000000005"
    )


def test_other_recovery_failures_quote_the_fatal_line() -> None:
    log = ["LOG:  starting", "FATAL:  could not locate required checkpoint record"]
    assert _recovery_failure(log) == (
        "scratch PostgreSQL exited during recovery: could not locate required checkpoint record"
    )


NOW = 2_000_000.0
NEWEST = BackupInfo(1, "L", "full", NOW - 900, NOW - 880, seg(2), seg(3), False)


def test_healthy_archiving_covers_up_to_now() -> None:
    check = ArchiveCheck(seg(2), seg(9), [], seg(9), NOW - 50)
    archiver = {"last_archived_wal": seg(9), "failing": False}
    assert covered_until(NEWEST, check, archiver, NOW) == NOW


def test_failing_archiver_covers_only_what_was_archived() -> None:
    check = ArchiveCheck(seg(2), seg(9), [], seg(9), NOW - 400)
    archiver = {"last_archived_wal": seg(9), "failing": True}
    assert covered_until(NEWEST, check, archiver, NOW) == NOW - 400


def test_a_gap_stops_coverage_at_the_segment_before_it() -> None:
    check = ArchiveCheck(seg(2), seg(9), [seg(5)], seg(4), NOW - 700)
    archiver = {"last_archived_wal": seg(9), "failing": False}
    assert covered_until(NEWEST, check, archiver, NOW) == NOW - 700


def test_a_repository_lagging_behind_the_archiver_is_not_covered() -> None:
    check = ArchiveCheck(seg(2), seg(6), [], seg(6), NOW - 600)
    archiver = {"last_archived_wal": seg(9), "failing": False}
    assert covered_until(NEWEST, check, archiver, NOW) == NOW - 600


def test_old_backup_with_wal_covering_is_no_breach_but_a_note(repo: PgBackRest) -> None:
    archive(repo, [seg(n) for n in range(2, 10)], mtime=NOW - 60)
    archiver = {"last_archived_wal": seg(9), "failing": False}
    policy = rpo_policy(repo, 1, [NEWEST], archiver, Objective(rto_s=600, rpo_s=300), NOW)
    assert (policy.breach, policy.exposure_s, policy.backup_age_s) == (None, 0.0, 880.0)
    assert policy.note == (
        "newest backup L is 880 s old (RPO 300 s); archived WAL without a gap covers the rest"
    )


def test_old_backup_without_wal_covering_is_a_breach_naming_the_gap(repo: PgBackRest) -> None:
    archive(repo, [seg(2), seg(3), seg(5)], mtime=NOW - 870)
    archiver = {"last_archived_wal": seg(5), "failing": False}
    policy = rpo_policy(repo, 1, [NEWEST], archiver, Objective(rto_s=600, rpo_s=300), NOW)
    assert policy.exposure_s == 869.0  # the mtime of segment 3, the last before the gap
    assert policy.breach == (
        "repo1: RPO policy breach: newest backup L finished 880 s ago and archived WAL reaches"
        f" only {datetime.fromtimestamp(NOW - 869, UTC).isoformat(timespec='milliseconds')}"
        " (WAL gap: 1 segment(s) missing from the archive:"
        f" {seg(4)} (archive runs from {seg(2)} to {seg(5)})); newest recoverable point is"
        " 869 s old, the stack allows 300 s"
    )


def test_a_repository_without_backups_has_no_age_and_no_breach(repo: PgBackRest) -> None:
    policy = rpo_policy(repo, 2, [NEWEST], {}, Objective(rto_s=600, rpo_s=300), NOW)
    assert (policy.backup_age_s, policy.breach) == (None, None)


def test_a_second_drill_on_the_same_lab_is_refused(tmp_path: Path) -> None:
    with (
        _drill_lock(tmp_path),
        pytest.raises(PeakreadyError) as caught,
        _drill_lock(tmp_path),
    ):
        pass
    assert caught.value.lines == [
        f"another backup drill runs on this lab ({tmp_path / 'backup-drill.lock'})"
    ]
    with _drill_lock(tmp_path):  # released again
        pass
