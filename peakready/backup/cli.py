"""``peakready backup schedule | drill`` — the lab's backup cadence and the restore drill.

Mounted by the top-level CLI as ``app.add_typer(backup_app, name="backup")``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from peakready import paths
from peakready.cli_options import StackOption
from peakready.errors import PeakreadyError

if TYPE_CHECKING:
    # Imported here: the stack model (pydantic) only when a command runs.
    from peakready.topology import Topology

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
    # Imported here: commands load their code only when run (a fast --help).
    from peakready.backup.lab_view import lab_pgbackrest
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
    target: str = typer.Option("lab", help="lab (pgBackRest) or aws (RDS / AWS Backup)"),
    work_dir: str = typer.Option(
        "reports/backup-drill", help="where the ledger, the summary and logs go"
    ),
    orders: int = typer.Option(20, min=1, max=1000, help="lab: orders placed before the target"),
    ledger: str | None = typer.Option(
        None,
        help="aws: the acknowledged orders to verify (a drill's runs/<scenario>/ledger.jsonl); "
        "the recovery target is the last acknowledgement in it",
    ),
    method: str = typer.Option("snapshot", help="aws: snapshot, aws-backup or pitr"),
    outputs_file: str | None = typer.Option(
        None, help="aws: the stack outputs as JSON (else `pulumi stack output`)"
    ),
    ssm_bucket: str | None = typer.Option(None, help="aws: S3 bucket of the SSM connection"),
    db_password_secret_arn: str | None = typer.Option(
        None,
        help="aws: Secrets Manager secret of the database password "
        "(else the environment variable PEAKREADY_DB_PASSWORD)",
    ),
) -> None:
    """Restore the latest backup into a scratch database and verify it against the ledger.

    On the lab: from each pgBackRest repository to a point in time, with orders it places
    itself. On AWS: an RDS snapshot, an AWS Backup job or a point-in-time restore into a
    scratch instance in the data subnets (always deleted), verified from an app instance.
    """
    # Imported here: the stack model (pydantic) only when a command runs.
    from peakready.topology import Topology

    topology = Topology.load(stack)
    folder = paths.output_dir(work_dir, "--work-dir")
    if target == "aws":
        if ledger is None:
            raise PeakreadyError("--ledger: the AWS restore drill needs the orders to verify")
        outputs = paths.input_file(outputs_file, "--outputs-file") if outputs_file else None
        summary = _aws_drill(
            topology,
            paths.input_file(ledger, "--ledger"),
            method,
            outputs,
            ssm_bucket,
            db_password_secret_arn,
        )
    elif target == "lab":
        # Imported here: psycopg and the pgBackRest reader only for the lab drill.
        from peakready.backup.lab import run_backup_drill
        from peakready.lab.state import LabState

        summary = run_backup_drill(topology, LabState.load(stack), folder, batch=orders).summary()
    else:
        raise PeakreadyError(f"--target {target!r}: expected lab or aws")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "backup-summary.json").write_text(json.dumps(summary, indent=2))
    console = Console()
    table = Table("repo", "backup", "RTO s", "RPO s", "verified", "missing", "passed")
    for repo in summary.get("repositories") or [_aws_row(summary)]:
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
        if summary.get(part):
            console.print(f"{part}: {'passed' if summary[part].get('passed') else 'FAILED'}")
    if office := summary.get("backoffice"):
        console.print(
            f"back office: {'passed' if office.get('passed') else 'FAILED'},"
            f" {office['verified_orders']}/{office['expected_orders']} orders restored,"
            f" RTO {office['rto_s']} s",
            highlight=False,
        )
    for reason in summary["reasons"]:
        console.print(f"[red]{reason}[/]", highlight=False)
    for check in summary.get("checks_needing_live_account") or []:
        console.print(f"needs a live account to prove: {check}", highlight=False)
    console.print(f"backup drill {'passed' if summary['passed'] else 'FAILED'}; {folder}")
    raise typer.Exit(0 if summary["passed"] else 1)


def _aws_drill(
    topology: Topology,
    ledger: Path,
    method: str,
    outputs_file: Path | None,
    ssm_bucket: str | None,
    secret_arn: str | None,
) -> dict[str, Any]:
    """The AWS restore drill (``peakready.backup.aws``) for the orders of ``ledger``."""

    # Imported here: boto3 and chaostoolkit-aws only for the AWS drill.
    from peakready.backup.aws import run_aws_restore_drill
    from peakready.backup.ledger import LedgerEntry
    from peakready.errors import PeakreadyError
    from peakready.load.ledger import read_ledger

    entries = [
        LedgerEntry(
            key=e.key,
            batch="ledger",
            product_id=e.product_id,
            quantity=e.quantity,
            sent=e.acked_at,
            acked=e.acked_at,
            order_id=e.order_id,
            status=e.status,
        )
        for e in read_ledger(ledger)
    ]
    if not entries:
        raise PeakreadyError(f"--ledger {ledger}: no acknowledged order in it")
    configuration: dict[str, Any] = {
        "peakready_stack": topology.stack,
        "aws_region": topology.region,
    }
    optional = {
        "peakready_outputs_file": str(outputs_file) if outputs_file else None,
        "peakready_ssm_bucket": ssm_bucket,
        "peakready_db_password_secret_arn": secret_arn,
    }
    configuration.update({k: v for k, v in optional.items() if v})
    password = os.environ.get("PEAKREADY_DB_PASSWORD")
    secrets = {"peakready_db_password": password} if password else None
    return run_aws_restore_drill(
        entries,
        max(e.acked for e in entries if e.acked is not None),
        configuration,
        secrets,
        method=method,
        objective=topology.objective("backup-restore"),
    )


def _aws_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The AWS drill's one restore as a row of the per-repository table."""
    return {
        "repo": summary.get("method"),
        "backup": summary.get("recovery_point"),
        **{k: summary.get(k) for k in ("rto_s", "rpo_s", "verified_orders", "missing_orders")},
        "passed": summary.get("passed"),
    }
