"""``peakready lab up | status | down``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The local lab: the stack's shape from real servers on 127.0.0.1.", no_args_is_help=True
)
