"""``peakready backup schedule | drill`` — the lab's backup cadence and the restore drill.

Mounted by the top-level CLI as ``app.add_typer(backup_app, name="backup")``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from peakready.cli_options import StackOption

app = typer.Typer(
    help="Backups of the lab: the cadence from the stack, and restore drills that count.",
    no_args_is_help=True,
)


@app.command()
def schedule(
    stack: str = StackOption,
    run: bool = typer.Option(False, "--run", help="take the backups that are due now"),
    every: int = typer.Option(
        0, min=0, max=86400, help="with --run: check again every N seconds (0: once)"
    ),
    hours: float = typer.Option(
        24.0, min=0.0, max=24 * 31, help="with --every: stop after this many hours"
    ),
) -> None:
    """When the next full/differential backup of each repository is due; --run takes due ones."""
    from peakready.backup.lab import lab_pgbackrest
    from peakready.backup.schedule import due_backups, run_due_backups
    from peakready.lab.state import LabState
    from peakready.topology import Topology

    topology = Topology.load(stack)
    pgbr = lab_pgbackrest(topology, LabState.load(stack))
    console = Console()
    table = Table("repo", "due now", "why", "next full (UTC)", "next diff (UTC)")
    for due in due_backups(topology, pgbr):
        table.add_row(
            str(due.repo),
            due.type or "-",
            due.reason,
            f"{due.next_full:%Y-%m-%d %H:%M}" if due.next_full else "-",
            f"{due.next_diff:%Y-%m-%d %H:%M}" if due.next_diff else "-",
        )
    console.print(table)
    if not run:
        return
    failed = 0
    stop_at = time.monotonic() + hours * 3600
    while True:
        for taken in run_due_backups(topology, pgbr, datetime.now(UTC)):
            state = "ok" if taken["ok"] else f"failed: {taken['error']}"
            console.print(
                f"repo{taken['repo']}: {taken['type']} backup ({taken['why']}),"
                f" {taken['seconds']} s, {state}"
            )
            failed += 0 if taken["ok"] else 1
        if not every or time.monotonic() + every > stop_at:
            break
        time.sleep(every)
    raise typer.Exit(1 if failed else 0)


@app.command()
def drill(
    stack: str = StackOption,
    work_dir: Path = typer.Option(
        Path("reports/backup-drill"), help="where the ledger, the summary and logs go"
    ),
    orders: int = typer.Option(20, min=1, max=1000, help="orders placed before the target"),
) -> None:
    """Restore the latest backup from each repository to a point in time and verify it."""
    from peakready.backup.lab import run_backup_drill
    from peakready.lab.state import LabState
    from peakready.topology import Topology

    topology = Topology.load(stack)
    result = run_backup_drill(topology, LabState.load(stack), work_dir, batch=orders)
    summary = result.summary()
    (work_dir / "backup-summary.json").write_text(json.dumps(summary, indent=2))
    console = Console()
    table = Table("repo", "backup", "RTO s", "RPO s", "verified", "missing", "passed")
    for repo in summary["repositories"]:
        table.add_row(
            str(repo["repo"]),
            str(repo["backup"]),
            str(repo["rto_s"]),
            str(repo["rpo_s"]),
            str(repo["verified_orders"]),
            str(repo["missing_orders"]),
            "yes" if repo["passed"] else "no",
        )
    console.print(table)
    for part in ("redis", "search"):
        if summary[part]:
            console.print(f"{part}: {'passed' if summary[part].get('passed') else 'FAILED'}")
    for reason in summary["reasons"]:
        console.print(f"[red]{reason}[/]", highlight=False)
    console.print(f"backup drill {'passed' if summary['passed'] else 'FAILED'}; {work_dir}")
    raise typer.Exit(0 if summary["passed"] else 1)
