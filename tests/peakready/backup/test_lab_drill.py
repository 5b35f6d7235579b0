"""The backup drill against real PostgreSQL, pgBackRest, Redis and searchd."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from peakready.backup import cli as backup_cli
from peakready.backup.lab import run_backup_drill
from peakready.backup.pgbackrest import Segment
from peakready.backup.scratch import wait_for
from peakready.chaos.backup.probes import recoverable_within_rpo
from peakready.topology import Topology

pytestmark = pytest.mark.lab


if TYPE_CHECKING:
    from conftest import MiniLab, Policies, SqlOrderClient


def test_healthy_drill_restores_every_acknowledged_order_from_each_repository(
    minilab: MiniLab, orders: SqlOrderClient, topology: Topology, tmp_path: Path
) -> None:
    minilab.start_redis()
    result = run_backup_drill(topology, minilab, tmp_path, orders=orders, batch=25, after_target=5)
    summary = result.summary()
    print(json.dumps(summary, indent=1))

    assert summary["passed"] is True, summary["reasons"]
    assert [r["repo"] for r in summary["repositories"]] == [1, 2]
    for repo in summary["repositories"]:
        assert repo["passed"] is True
        assert repo["verified_orders"] == 25
        assert repo["missing_orders"] == 0
        assert repo["unexpected_orders"] == 0
        assert repo["rpo_s"] == 0.0
        assert 0 < repo["rto_s"] < 120
        assert repo["wal_segments_checked"] >= 1
    assert summary["missing_orders"] == 0 and summary["verified_orders"] == 25
    assert summary["rto_s"] == max(r["rto_s"] for r in summary["repositories"])
    # repo1 holds the lab's first full backup; empty repo2 gets its first one
    assert [(b["repo"], b["type"], b["ok"]) for b in summary["backups_taken"]] == [
        (2, "full", True)
    ]
    assert summary["redis"]["passed"] is True and summary["redis"]["missing_keys"] == 0
    assert summary["redis"]["keys_restored"] >= 29
    assert summary["search"]["passed"] is True
    assert summary["search"]["documents"] == summary["search"]["catalogue"] == 40
    assert summary["search"]["sample_hits"] == 40  # every product is named "product N"
    # the scratch servers are gone
    assert not list(Path("/tmp").glob("peakready-restore-repo*"))


def test_the_restore_matches_the_source_at_the_target_while_other_orders_flow(
    minilab: MiniLab, orders: SqlOrderClient, topology: Topology, tmp_path: Path
) -> None:
    """Other writers (the checkout probe, a drill's load) keep committing around the
    recovery target: the expected checksums must be those of the restored moment."""
    minilab.start_redis()
    stop = threading.Event()
    placed = 0

    def write() -> None:
        nonlocal placed
        writer = type(orders)(minilab.conninfo())  # its own connection
        try:
            while not stop.is_set() and placed < 20_000:  # bounded
                writer.place(f"other-{placed}", placed % 40 + 1, 1)
                placed += 1
        finally:
            writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        result = run_backup_drill(
            topology, minilab, tmp_path, orders=orders, batch=10, after_target=5
        )
    finally:
        stop.set()
        thread.join(10)
    summary = result.summary()
    assert placed > 100, "the other writer hardly ran"
    assert summary["passed"] is True, summary["reasons"]


def test_missing_wal_segment_fails_the_drill_naming_the_segment(
    minilab: MiniLab, orders: SqlOrderClient, topology: Topology, tmp_path: Path
) -> None:
    segment = minilab.write_and_switch()
    minilab.write_and_switch()
    archived = minilab.pgbr.archived_segments(1)
    position = Segment.parse(segment).position  # type: ignore[union-attr]
    (minilab.pgbr.archive_dir(1) / "15-1" / segment[:16] / archived[position][0]).unlink()

    result = run_backup_drill(
        topology, minilab, tmp_path, orders=orders, redis_drill=False, search_drill=False
    )
    summary = result.summary()
    print(json.dumps(summary, indent=1))

    assert summary["passed"] is False
    repo1, repo2 = summary["repositories"]
    assert repo1["passed"] is False
    assert segment in repo1["reason"]
    assert "recovery ended before the recovery target was reached" in repo1["reason"]
    assert repo1["rto_s"] is None
    assert repo2["passed"] is True and repo2["missing_orders"] == 0
    assert any(segment in reason for reason in summary["reasons"])


def test_truncated_backup_file_fails_the_drill_naming_the_file(
    minilab: MiniLab, orders: SqlOrderClient, topology: Topology, tmp_path: Path
) -> None:
    label = minilab.pgbr.backups(repo=1)[-1].label
    files = (minilab.pgbr.backup_dir(1) / label / "pg_data" / "base").rglob("*.gz")
    victim = max(files, key=lambda p: p.stat().st_size)
    size = victim.stat().st_size
    with open(victim, "r+b") as handle:
        handle.truncate(size // 2)
    relative = str(victim.relative_to(minilab.pgbr.backup_dir(1) / label))

    result = run_backup_drill(
        topology, minilab, tmp_path, orders=orders, redis_drill=False, search_drill=False
    )
    summary = result.summary()
    print(json.dumps(summary, indent=1))

    assert summary["passed"] is False
    repo1, repo2 = summary["repositories"]
    assert repo1["passed"] is False and repo1["rto_s"] is None
    assert f"backup {label}: {relative} truncated ({size // 2} of {size} bytes)" in repo1["reason"]
    assert repo2["passed"] is True and repo2["missing_orders"] == 0


def test_backup_older_than_the_rpo_policy_is_a_breach(
    minilab: MiniLab, orders: SqlOrderClient, policies: Policies, tmp_path: Path
) -> None:
    minilab.full_backups(repos=(2,))
    # archiving stalls after the backups: nothing newer than them can be recovered
    minilab.sql("ALTER SYSTEM SET archive_command = '/bin/false'")
    minilab.sql("SELECT pg_reload_conf()")
    time.sleep(0.5)  # the archiver rereads its configuration on SIGHUP
    minilab.write_and_switch(wait=False)
    archiver = "SELECT last_failed_time IS NOT NULL FROM pg_stat_archiver"
    assert wait_for(lambda: minilab.sql(archiver)[0][0], 10), "archiving never failed"
    time.sleep(3)

    result = run_backup_drill(
        policies.with_rpo(2),
        minilab,
        tmp_path,
        orders=orders,
        check_timeout_s=3,
        redis_drill=False,
        search_drill=False,
    )
    summary = result.summary()
    print(json.dumps(summary, indent=1))

    assert summary["passed"] is False
    for policy in summary["policy"]:
        assert policy["exposure_s"] > 2
        assert policy["breach"].startswith(
            f"repo{policy['repo']}: RPO policy breach: newest backup"
        )
        assert "the stack allows 2 s" in policy["breach"]
        assert "WAL archiving failing since" in policy["breach"]
    assert sum("RPO policy breach" in r for r in summary["reasons"]) == 2
    assert summary["backup_age_s"] >= 3


def test_schedule_takes_the_due_first_full_and_the_probe_sees_it(
    minilab: MiniLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(minilab.write_state()))
    runner = CliRunner()
    shown = runner.invoke(backup_cli.app, ["schedule", "--stack", "dev"])
    assert shown.exit_code == 0, shown.output
    assert "no full backup yet" in shown.output  # repo2 is empty
    assert not recoverable_within_rpo(configuration={"peakready_stack": "dev"})

    taken = runner.invoke(backup_cli.app, ["schedule", "--stack", "dev", "--run"])
    assert taken.exit_code == 0, taken.output
    assert "repo2: full backup" in taken.output and "ok" in taken.output
    assert [b.type for b in minilab.pgbr.backups(repo=2)] == ["full"]
    assert recoverable_within_rpo(configuration={"peakready_stack": "dev"})
    again = runner.invoke(backup_cli.app, ["schedule", "--stack", "dev"])
    assert "no full backup yet" not in again.output
