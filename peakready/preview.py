"""Placeholder: built in its own issue."""

from __future__ import annotations

from typing import Any

from peakready.errors import PeakreadyError


def run(*args: Any, **kwargs: Any) -> int:
    raise PeakreadyError("'preview' is not built yet")
