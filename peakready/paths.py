"""Checking every path a user gives before any work starts: one line, exit 2.

A folder the report goes to, a file a plan is written to: each is checked for what it
names (a file where a folder is wanted, a path below a file, a place nobody may write)
before a lab starts or a drill runs, so that nothing is left half-done.
"""

from __future__ import annotations

import os
from pathlib import Path

from peakready.errors import PeakreadyError


def output_dir(given: str | os.PathLike[str], option: str) -> Path:
    """``given`` as a folder to write into (made later): absolute, or ``PeakreadyError``."""
    path = _non_empty(given, option, "a folder")
    if path.exists() and not path.is_dir():
        raise PeakreadyError(f"{option} {path}: is a file, expected a folder")
    _writable_below(path, option)
    return path


def output_file(given: str | os.PathLike[str], option: str) -> Path:
    """``given`` as a file to (over)write: absolute, or ``PeakreadyError``."""
    path = _non_empty(given, option, "a file")
    if path.is_dir():
        raise PeakreadyError(f"{option} {path}: is a folder, expected a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise PeakreadyError(f"{option} {path}: not writable")
    _writable_below(path.parent, option)
    return path


def input_file(given: str | os.PathLike[str], option: str) -> Path:
    """``given`` as a file to read: absolute, or ``PeakreadyError``."""
    path = _non_empty(given, option, "a file")
    if not path.exists():
        raise PeakreadyError(f"{option} {path}: no such file")
    if not path.is_file():
        raise PeakreadyError(f"{option} {path}: expected a file")
    if not os.access(path, os.R_OK):
        raise PeakreadyError(f"{option} {path}: not readable")
    return path


def _non_empty(given: str | os.PathLike[str], option: str, what: str) -> Path:
    text = os.fspath(given)
    if not text.strip():
        raise PeakreadyError(f"{option}: empty, expected {what}")
    return Path(text).expanduser().absolute()


def _writable_below(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder this user may create in."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PeakreadyError(f"{option} {path}: {existing} is a file, expected a folder")
    if existing == path and not os.access(existing, os.W_OK | os.X_OK):
        raise PeakreadyError(f"{option} {path}: not writable")
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise PeakreadyError(f"{option} {path}: cannot create it in {existing} (not writable)")
