"""Probes of the whole stack."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["stack_outputs"]


def stack_outputs(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """The stack outputs of DESIGN §3 (endpoint, app group, database primary, …)."""
    return shared.driver(configuration, secrets).outputs()
