"""The ``peakready`` command line.

Each command is a thin wrapper: it parses options and calls the module that does the
work, imported lazily so that ``peakready --help`` stays fast. User mistakes raise
:class:`~peakready.errors.PeakreadyError` and are printed as one line each.
"""

from __future__ import annotations

import subprocess
import sys
from enum import StrEnum

import typer
from rich.console import Console

from peakready import paths
from peakready.backup.cli import app as backup_app
from peakready.cli_options import StackOption, load_stack
from peakready.errors import PeakreadyError
from peakready.lab.cli import app as lab_app

app = typer.Typer(
    name="peakready",
    help="Prove an e-commerce stack ready for its sales peak: plan, preview, lab, drill.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(lab_app, name="lab")
app.add_typer(backup_app, name="backup")

err_console = Console(stderr=True)


class Target(StrEnum):
    lab = "lab"
    aws = "aws"


@app.command()
def plan(stack: str = StackOption) -> None:
    """Capacity needed at the forecast peak, per tier, and whether losing one AZ leaves enough."""
    # Imported here: each command loads its code only when run (a fast --help).
    from peakready import planner

    load_stack(stack)
    raise typer.Exit(planner.run(stack))


@app.command()
def preview(
    stack: str = StackOption,
    baseline: str | None = typer.Option(
        None, help="plan.json to diff against (e.g. the main branch's)"
    ),
    against: str | None = typer.Option(
        None, help="git ref whose stack file and program give the baseline"
    ),
    out: str | None = typer.Option(None, help="write the deterministic plan here"),
) -> None:
    """Run the Pulumi program offline under mocks: plan, Markdown diff, policy verdicts."""
    # Imported here: each command loads its code only when run (a fast --help).
    from peakready import preview as preview_mod

    if baseline is not None and against is not None:
        raise PeakreadyError("--baseline and --against: give one, not both")
    load_stack(stack)
    base = paths.input_file(baseline, "--baseline") if baseline is not None else None
    target = paths.output_file(out, "--out") if out is not None else None
    raise typer.Exit(preview_mod.run(stack, baseline=base, against=against, out=target))


@app.command()
def drill(
    target: Target = typer.Option(Target.lab, help="where the drill runs"),
    stack: str = StackOption,
    scenario: list[str] | None = typer.Option(
        None, "--scenario", help="scenario to run (repeatable); default: all"
    ),
    report_dir: str = typer.Option("reports/latest", help="where the report is written"),
    dry_run: bool = typer.Option(False, "--dry-run", help="run probes only, inject no fault"),
    allow_protected: bool = typer.Option(
        False, "--allow-protected", help="allow destructive drills on a protected stack"
    ),
    workers: int = typer.Option(
        0, min=0, max=64, help="local Locust worker processes (0: one generator process)"
    ),
    remote_workers: int = typer.Option(
        0,
        min=0,
        max=1000,
        help="Locust workers to wait for (`peakready load worker`), AWS target only",
    ),
    master_bind: str = typer.Option(
        "127.0.0.1:5557", help="HOST:PORT the Locust master listens on for workers"
    ),
) -> None:
    """Run chaos and backup drills with load flowing; write summary.json, HTML and timelines."""
    # Imported here: chaoslib, psycopg and the lab only when a drill runs.
    from peakready import drill as drill_mod
    from peakready.drill.runner import LoadOptions

    load_stack(stack)
    bind = host_port(master_bind, "--master-bind")
    if target == Target.lab and (remote_workers or not bind.startswith("127.0.0.1:")):
        raise PeakreadyError(
            "--remote-workers/--master-bind: the lab's load stays on 127.0.0.1; "
            "use --workers for local worker processes"
        )
    raise typer.Exit(
        drill_mod.run(
            target=target.value,
            stack=stack,
            scenarios=scenario or None,
            report_dir=paths.output_dir(report_dir, "--report-dir"),
            dry_run=dry_run,
            allow_protected=allow_protected,
            load=LoadOptions(workers, remote_workers, bind),
        )
    )


load_app = typer.Typer(help="The load generator's distributed workers.", no_args_is_help=True)
app.add_typer(load_app, name="load")


@load_app.command("worker")
def load_worker(
    master: str = typer.Option(..., help="HOST:PORT of the drill's Locust master"),
    run_dir: str = typer.Option(
        "load-worker", help="where this worker keeps its shard of requests and ledger"
    ),
) -> None:
    """Join a drill's load as a Locust worker: take users from the master, send them to
    the endpoint it names, keep a shard of requests and ledger here and stream it back."""
    address = host_port(master, "--master")
    folder = paths.output_dir(run_dir, "--run-dir")
    # Its own process: Locust patches the standard library for gevent when imported.
    command = [sys.executable, "-m", "peakready.load", "worker", "--master", address]
    raise typer.Exit(subprocess.call([*command, "--run-dir", str(folder)]))


def host_port(value: str, option: str) -> str:
    """``HOST:PORT`` checked: a host and a port from 1 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PeakreadyError(f"{option} {value!r}: expected HOST:PORT, e.g. 10.0.1.5:5557")
    return value


def main() -> None:
    """Entry point: run the app, turning user errors into one-line messages."""
    try:
        code = app(standalone_mode=False)
    except PeakreadyError as exc:
        for line in exc.lines:
            err_console.print(
                f"peakready: error: {line}", markup=False, highlight=False, soft_wrap=True
            )
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("peakready: aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("peakready: interrupted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors (bad option, missing argument) arrive here in non-standalone mode;
        # Typer vendors click, so recognise them by their interface.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
