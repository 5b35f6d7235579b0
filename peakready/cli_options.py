"""Options every ``peakready`` command group shares."""

from __future__ import annotations

import typer

from peakready.topology import Topology

StackOption = typer.Option("dev", "--stack", "-s", help="stack name: stacks/Pulumi.<stack>.yaml")


def load_stack(stack: str) -> Topology:
    """The stack's topology; its warnings (legal but suspicious settings) go to stderr."""
    topology = Topology.load(stack)
    for line in topology.warnings():
        typer.echo(f"peakready: warning: {line}", err=True)
    return topology
