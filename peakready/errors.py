"""Errors a user can cause and fix: printed as one line each, never as a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class PeakreadyError(Exception):
    """A mistake in input or environment that the user can fix.

    The CLI prints each line of ``lines`` as ``peakready: error: <line>`` and exits
    with ``exit_code``; nothing else is printed.
    """

    exit_code = 2

    def __init__(self, *lines: str, exit_code: int | None = None) -> None:
        if not lines:
            raise ValueError("PeakreadyError needs at least one line")
        self.lines = list(lines)
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__("\n".join(self.lines))


class ConfigError(PeakreadyError):
    """A stack file or stack setting is wrong: one line per bad field."""


def env_error(exc: ValidationError, prefix: str) -> PeakreadyError:
    """A settings model's first validation error as one line naming its variable
    (``<prefix><FIELD>: <what is wrong>``)."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    return PeakreadyError(f"{prefix}{field.upper()}: {first['msg']}" if field else first["msg"])
