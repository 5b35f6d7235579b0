"""Scratch servers a restore is verified in: started on 127.0.0.1, always torn down.

Each is a context manager; leaving the ``with`` block stops the process the drill
started (by its own PID, never by name) and removes its data.
"""

from __future__ import annotations

import contextlib
import os
import secrets as secrets_mod
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from peakready.lab.proc import as_postgres_user

POSTGRES_UID_NAME = "postgres"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(candidates: range, taken: set[int] | None = None) -> int:
    """The first port of ``candidates`` nothing listens on (and not in ``taken``)."""
    for port in candidates:
        if port not in (taken or set()) and port_free(port):
            return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")


def postgres_owned_dir(prefix: str, parent: Path | None = None) -> Path:
    """A fresh 0700 directory owned by postgres (scratch data must be)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if os.geteuid() == 0:
        shutil.chown(path, POSTGRES_UID_NAME, POSTGRES_UID_NAME)
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, wait: float = 15) -> None:
    """Stop a process this module started: ``sig``, then SIGKILL after ``wait`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


def postgres_binary(data_dir: Path, configured: str | None = None) -> str:
    """The ``postgres`` server binary matching the data directory's major version."""
    if configured:
        return configured
    version = (data_dir / "PG_VERSION").read_text().strip()
    candidate = Path(f"/usr/lib/postgresql/{version}/bin/postgres")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("postgres")
    if found:
        return found
    raise RuntimeError(f"no postgres {version} binary (looked in {candidate} and PATH)")


class ScratchPostgres:
    """A restored data directory started on its own port with archiving off.

    A restored ``postgresql.conf`` keeps the source's port, ``archive_command`` and
    HBA file (LAB-NOTES), so everything that could touch the source is overridden on
    the command line. Clients connect over a Unix socket inside the scratch folder
    (0700, owned by postgres), where the drill's own HBA file trusts local users: only
    root and postgres can reach it.
    """

    def __init__(self, data_dir: Path, port: int, log: Path, binary: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log
        self.socket_dir = data_dir.parent / "socket"
        self.binary = postgres_binary(data_dir, binary)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        hba = self.data_dir.parent / "drill_hba.conf"
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        ident = self.data_dir.parent / "drill_ident.conf"
        ident.write_text("")
        if os.geteuid() == 0:
            for path in (self.socket_dir, hba, ident):
                shutil.chown(path, POSTGRES_UID_NAME, POSTGRES_UID_NAME)
        overrides = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "archive_mode": "off",
            "archive_command": "",
            "hba_file": str(hba),
            "ident_file": str(ident),
            "synchronous_standby_names": "",
            "primary_conninfo": "",
            "primary_slot_name": "",
            "logging_collector": "off",
            "log_destination": "stderr",
            "ssl": "off",
            "cluster_name": "peakready-restore-drill",
            "shared_buffers": "32MB",
        }
        cmd = [self.binary, "-D", str(self.data_dir)]
        for key, value in overrides.items():
            cmd += ["-c", f"{key}={value}"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                as_postgres_user(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=True,
            )

    @property
    def conninfo(self) -> str:
        return f"host={self.socket_dir} port={self.port} connect_timeout=2"

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log_tail(self, lines: int = 40) -> list[str]:
        try:
            return self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT, wait=10)  # immediate shutdown: data is scratch
            self.proc = None


class _ScratchServer:
    """A scratch server process started in ``__enter__``; stopped (SIGTERM) on exit."""

    proc: subprocess.Popen[bytes] | None = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, wait=10)
            self.proc = None


class ScratchRedis(_ScratchServer):
    """``redis-server`` loading a copied RDB file, on its own port, with a new password."""

    def __init__(self, work: Path, rdb: Path, port: int, binary: str = "redis-server") -> None:
        self.work = work
        self.rdb = rdb
        self.port = port
        self.binary = binary
        self.password = secrets_mod.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ScratchRedis:
        config = self.work / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"dir {self.work}",
                    f"dbfilename {self.rdb.name}",
                    'save ""',
                    "appendonly no",
                    "protected-mode yes",
                    "daemonize no",
                    f"logfile {self.work / 'redis.log'}",
                    f"requirepass {self.password}",
                ]
            )
            + "\n"
        )
        config.chmod(0o600)
        self.proc = subprocess.Popen(
            [self.binary, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self


class ScratchSearchd(_ScratchServer):
    """A Sphinx ``searchd`` with one empty RT index, to rebuild the catalogue into."""

    def __init__(
        self, work: Path, port: int, api_port: int, index: str, binary: str = "searchd"
    ) -> None:
        self.work = work
        self.port = port
        self.api_port = api_port
        self.index = index
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ScratchSearchd:
        (self.work / "data").mkdir(exist_ok=True)
        config = self.work / "sphinx.conf"
        # Imported here: only the search scratch server needs it (pymysql).
        from peakready.app.search import sphinx_index_config

        config.write_text(
            sphinx_index_config(self.index, str(self.work / "data" / self.index))
            + f"""
searchd
{{
    listen = 127.0.0.1:{self.port}:mysql41
    listen = 127.0.0.1:{self.api_port}
    log = {self.work / "searchd.log"}
    query_log = {self.work / "query.log"}
    pid_file = {self.work / "searchd.pid"}
    binlog_path =
    workers = threads
}}
"""
        )
        self.proc = subprocess.Popen(
            [self.binary, "--config", str(config), "--nodetach"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.work,
            start_new_session=True,
        )
        return self


@contextlib.contextmanager
def scratch_root(prefix: str) -> Iterator[Path]:
    """A postgres-owned temporary folder, removed on exit whatever happened."""
    path = postgres_owned_dir(prefix)
    try:
        yield path
    finally:
        remove_tree(path)


def wait_for(predicate: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
