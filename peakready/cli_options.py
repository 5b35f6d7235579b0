"""Options every ``peakready`` command group shares."""

from __future__ import annotations

import typer

StackOption = typer.Option("dev", "--stack", "-s", help="stack name: stacks/Pulumi.<stack>.yaml")
