"""Running pgBackRest: the one place that invokes it, as the ``postgres`` user.

The lab's backup component (stanza, check, first backup) and the backup drill
(``peakready.backup.pgbackrest.PgBackRest``) both call :func:`run`.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from peakready.errors import PeakreadyError
from peakready.lab.proc import as_postgres_user

#: What pgBackRest needs of the environment; nothing of ours (no secret) leaks into it.
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Completed:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_line(self) -> str:
        """The most telling line of pgBackRest's output (its ERROR line, else the last)."""
        lines = [ln.strip() for ln in (self.stderr + "\n" + self.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR:" in ln]
        return (errors or lines or [f"exit {self.returncode}"])[0][:400]


def run(
    binary: str,
    config: Path,
    stanza: str,
    *args: str,
    repo: int | None = None,
    timeout: float = 600,
) -> Completed:
    """``pgbackrest --config … --stanza … [--repo=N] args`` as postgres, from ``/``.

    A timeout is returned as exit 124 with an ERROR line, like pgBackRest's own errors.
    """
    cmd = [binary, f"--config={config}", f"--stanza={stanza}"]
    if repo is not None:
        cmd.append(f"--repo={repo}")
    cmd.extend(args)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            as_postgres_user(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            env=ENV,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return Completed(cmd, 124, "", f"ERROR: timed out after {exc.timeout:.0f}s", timeout)
    except FileNotFoundError:
        raise PeakreadyError(f"pgbackrest binary {binary!r}: not found") from None
    return Completed(cmd, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def check(binary: str, config: Path, stanza: str, *args: str, timeout: float = 60) -> Completed:
    """:func:`run`, raising ``PeakreadyError`` with pgBackRest's error line on failure."""
    done = run(binary, config, stanza, *args, timeout=timeout)
    if done.returncode != 0:
        raise PeakreadyError(
            f"pgbackrest {args[0]} failed (exit {done.returncode}): {done.error_line}"
        )
    return done
