"""AWS cron parsing and the backup cadence derived from the stack."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from peakready.backup.pgbackrest import BackupInfo
from peakready.backup.schedule import due_for_repo, schedules
from peakready.cron import Cron
from peakready.errors import ConfigError
from peakready.topology import Topology


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def backup(repo: int, kind: str, stop: str) -> BackupInfo:
    ts = at(stop).timestamp()
    return BackupInfo(repo, f"{stop}-{kind}", kind, ts - 5, ts, "0" * 24, "0" * 24, False)


def test_weekly_full_fires_next_sunday_at_three() -> None:
    cron = Cron.parse("cron(0 3 ? * SUN *)")
    assert cron.next_after(at("2026-11-22T03:00")) == at("2026-11-29T03:00")  # a Sunday
    assert cron.next_after(at("2026-11-21T12:00")) == at("2026-11-22T03:00")


def test_daily_except_sunday_skips_sunday() -> None:
    cron = Cron.parse("cron(0 3 ? * MON-SAT *)")
    assert cron.next_after(at("2026-11-21T03:00")) == at("2026-11-23T03:00")


def test_steps_lists_and_last_day_of_month() -> None:
    assert Cron.parse("cron(0/15 * * * ? *)").next_after(at("2026-01-01T10:07")) == at(
        "2026-01-01T10:15"
    )
    assert Cron.parse("cron(30 1,13 * * ? *)").next_after(at("2026-01-01T02:00")) == at(
        "2026-01-01T13:30"
    )
    assert Cron.parse("cron(0 0 L FEB ? *)").next_after(at("2028-01-01T00:00")) == at(
        "2028-02-29T00:00"
    )


def test_previous_before_is_the_last_firing() -> None:
    cron = Cron.parse("cron(0 3 ? * SUN *)")
    assert cron.previous_before(at("2026-11-25T00:00")) == at("2026-11-22T03:00")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0 3 * * ? *", "expected cron(Minutes Hours"),
        ("cron(0 3 * *)", "got 4 fields"),
        ("cron(0 25 * * ? *)", "hours field: got '25', expected 0-23"),
        ("cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 3 ? * FUNDAY *)", "day-of-week field: got 'FUNDAY'"),
        ("cron(0/0 3 ? * * *)", "step must be a positive number"),
    ],
)
def test_malformed_schedule_names_the_setting(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Cron.parse(text, "peakready:backup.full_schedule")
    assert caught.value.lines[0].startswith("peakready:backup.full_schedule: ")
    assert fragment in caught.value.lines[0]


def test_the_stack_schedules_parse() -> None:
    for stack in ("dev", "staging", "prod"):
        full, diff = schedules(Topology.load(stack))
        assert full.next_after(at("2026-11-22T00:00")) is not None
        assert diff.next_after(at("2026-11-22T00:00")) is not None


def test_a_repository_without_a_full_backup_needs_one() -> None:
    full, diff = schedules(Topology.load("dev"))
    due = due_for_repo(2, [backup(1, "full", "2026-11-22T03:01")], full, diff, at("2026-11-22T04"))
    assert (due.repo, due.type, due.reason) == (2, "full", "no full backup yet")


def test_diff_is_due_after_the_daily_slot_and_full_after_the_weekly_one() -> None:
    full, diff = schedules(Topology.load("dev"))
    sunday_full = [backup(1, "full", "2026-11-22T03:01")]  # Sunday
    assert due_for_repo(1, sunday_full, full, diff, at("2026-11-22T20:00")).type is None
    monday = due_for_repo(1, sunday_full, full, diff, at("2026-11-23T03:05"))
    assert (monday.type, monday.next_diff) == ("diff", at("2026-11-23T03:00"))
    with_diffs = [*sunday_full, backup(1, "diff", "2026-11-28T03:02")]
    next_sunday = due_for_repo(1, with_diffs, full, diff, at("2026-11-29T03:00"))
    assert (next_sunday.type, next_sunday.reason) == ("full", "full was due 2026-11-29 03:00 UTC")
