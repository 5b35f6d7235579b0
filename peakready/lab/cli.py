"""``peakready lab up | status | down``."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from peakready.cli_options import StackOption, load_stack

app = typer.Typer(
    help="The local lab: the stack's shape from real servers on 127.0.0.1.", no_args_is_help=True
)


@app.command()
def up(stack: str = StackOption) -> None:
    """Start the lab and return when every part is ready (a no-op when it already runs)."""
    from peakready.lab import start  # lazy: `peakready --help` imports no lab

    raise typer.Exit(start.up(load_stack(stack), Console()))


@app.command()
def status(
    stack: str = StackOption,
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Health per component and the stack outputs; exit 0 healthy, 1 degraded, 2 no lab."""
    from peakready.lab.health import LabStatus, status  # lazy: see `up`

    code, report = status(stack)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        raise typer.Exit(code)
    console = Console()
    if code == LabStatus.NOT_RUNNING:
        console.print(f"no lab: {report.get('error', 'not running')}", markup=False)
        raise typer.Exit(code)
    table = Table(title=f"lab {stack}: {'healthy' if report['healthy'] else 'DEGRADED'}")
    table.add_column("")
    table.add_column("component")
    table.add_column("detail", overflow="fold")
    for comp in report["components"]:
        table.add_row(
            "[green]✔[/]" if comp["healthy"] else "[red]✘[/]", comp["name"], comp["detail"]
        )
    console.print(table)
    outputs = Table(title="outputs")
    outputs.add_column("key")
    outputs.add_column("value", overflow="fold")
    for key, value in report["outputs"].items():
        outputs.add_row(key, value if isinstance(value, str) else json.dumps(value))
    console.print(outputs)
    raise typer.Exit(code)


@app.command()
def down(
    stack: str = StackOption,
    purge: bool = typer.Option(False, "--purge", help="also remove the lab folder (data)"),
) -> None:
    """Stop exactly what `up` started; keeps data unless --purge. Safe to run twice."""
    from peakready.lab import stop  # lazy: see `up`

    raise typer.Exit(stop.down(stack, Console(), purge=purge))
