"""How a figure reads in an HTML table cell (shared by the drill and backup sections)."""

from __future__ import annotations

from html import escape
from typing import Any


def cell(value: Any) -> str:
    """``—`` for nothing, yes/no for booleans, two decimals for floats, escaped text else."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return escape(str(value))
