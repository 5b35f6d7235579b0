"""Backup: a pgBackRest stanza over every member, two repositories (repo2 stands for the
off-site copy). Once a leader runs, ``up`` creates the stanza, checks that WAL reaches
both repositories, and takes a first full backup to repo1 when it holds none.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from peakready.lab import pgbackrest
from peakready.lab.components.base import Component, Row, UpContext

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan

STANZA = "peakready"
ROW = "pgBackRest stanza"


class Backup(Component):
    kind = "pgbackrest"
    after = ("patroni",)
    role = "pgbackrest"
    regional = True
    binaries: ClassVar[dict[str, str]] = {"pgbackrest": "Debian package pgbackrest"}

    def rendered_files(self, plan: Plan) -> list[Path]:
        return [plan.pgbackrest_config]

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        lab = plan.lab
        dirs = [(lab / "backup", "postgres", 0o750), (lab / "pgbackrest", "postgres", 0o750)]
        for sub in ("backup/repo1", "backup/repo2", "pgbackrest/log", "pgbackrest/lock"):
            dirs.append((lab / sub, "postgres", 0o750))
        dirs.append((lab / "pgbackrest" / "spool", "postgres", 0o750))
        return dirs

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {
            "pgbackrest": {
                "config": str(plan.pgbackrest_config),
                "stanza": STANZA,
                "binary": plan.binaries.get("pgbackrest", "pgbackrest"),
                "repos": [str(path) for path in repo_paths(plan)],
            }
        }

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        return {"backup_vault": str(plan.lab / "backup")}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        lab = plan.lab
        return {
            "pgbackrest_manage_directories": False,
            "pgbackrest_config_path": str(plan.pgbackrest_config),
            "pgbackrest_stanza": STANZA,
            "pgbackrest_repo_paths": [str(path) for path in repo_paths(plan)],
            "pgbackrest_log_path": str(lab / "pgbackrest" / "log"),
            "pgbackrest_lock_path": str(lab / "pgbackrest" / "lock"),
            "pgbackrest_spool_path": str(lab / "pgbackrest" / "spool"),
            "pgbackrest_members": [
                {
                    "data_dir": str(plan.pg_data(i)),
                    "port": plan.ports.postgres(i),
                    "socket_dir": str(plan.socket_dir),
                }
                for i in plan.az_range
            ],
        }

    def progress_rows(self) -> list[str]:
        return [ROW]

    def step(self, ctx: UpContext) -> list[Row]:
        if ctx.facts.get("db_leader") and ctx.plan.pgbackrest_config.exists():
            status = ctx.facts.setdefault("backup_status", {"detail": "stanza-create"})
            ctx.launch("backup", lambda: setup_backup(ctx.plan, status))
        if ctx.job_done("backup"):
            return [Row(ROW, True, ctx.job_result("backup"))]
        return [Row(ROW, False, ctx.facts.get("backup_status", {}).get("detail", ""))]


def repo_paths(plan: Plan) -> list[Path]:
    return [plan.lab / "backup" / "repo1", plan.lab / "backup" / "repo2"]


def setup_backup(plan: Plan, status: dict[str, str]) -> str:
    """stanza-create, check, and a first full backup to repo1 if it has none."""
    binary, config = plan.binaries["pgbackrest"], plan.pgbackrest_config
    pgbackrest.check(binary, config, STANZA, "stanza-create")
    status["detail"] = "check (WAL archiving to repo1 + repo2)"
    pgbackrest.check(binary, config, STANZA, "check")
    info = json.loads(
        pgbackrest.check(binary, config, STANZA, "info", "--output=json").stdout or "[]"
    )
    backups = len(info[0].get("backup", [])) if info else 0
    if not backups:
        status["detail"] = "first full backup to repo1"
        pgbackrest.check(binary, config, STANZA, "backup", "--repo=1", "--type=full", timeout=120)
        backups = 1
    return f"stanza ok, WAL archived, {backups} backup(s)"
