"""Low-level process facts: start detached into a freezer cgroup, alive, belongs to the lab.

Nothing here sends a signal: :mod:`peakready.lab.control` is the only code that does.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from peakready.errors import PeakreadyError

POSTGRES_USER = "postgres"
CPU_PERIOD_US = 20_000  # short periods: a throttled instance stalls for at most 16 ms
PROCESS_SHARES = 1024  # the cgroup v1 cpu weight of one process at nice 0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def alive(pid: int | None) -> bool:
    """Whether ``pid`` runs: exists and is not a zombie (``kill -0`` succeeds on zombies)."""
    if not pid or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # The state letter follows the parenthesised command name, which may hold spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def belongs(pid: int, lab_dir: Path, data_dir: str | Path | None = None) -> bool:
    """Whether ``pid`` is a lab process: its cmdline or cwd names the lab folder or data dir."""
    if not alive(pid):
        return False
    marks = [str(lab_dir)]
    if data_dir:
        marks.append(str(data_dir))
    args = cmdline(pid)
    if any(mark in arg for arg in args for mark in marks):
        return True
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return any(cwd == mark or cwd.startswith(mark + "/") for mark in marks)


def postmaster_pid_from(data_dir: str | Path) -> int | None:
    """The postmaster's PID from ``<data_dir>/postmaster.pid``, when it runs."""
    try:
        first = (Path(data_dir) / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first)
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def as_postgres_user(cmd: list[str]) -> list[str]:
    """``cmd`` run as the ``postgres`` user (PostgreSQL, Patroni and pgBackRest refuse root)."""
    if os.geteuid() != 0:
        return cmd
    return [
        "setpriv",
        f"--reuid={POSTGRES_USER}",
        f"--regid={POSTGRES_USER}",
        "--init-groups",
        *cmd,
    ]


def run_as_postgres(
    cmd: list[str], timeout: float = 30, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to its end as the postgres user, from ``/`` (a folder it can read);
    ``env``: its whole environment (default: this process's)."""
    return subprocess.run(
        as_postgres_user(cmd),
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --------------------------------------------------------------------------- cgroups


def ensure_cgroups(cgroup: Path, azs: Iterable[str]) -> None:
    """Create the lab's freezer cgroup and one child per AZ (cgroup v1)."""
    if not cgroup.parent.parent.exists():
        raise PeakreadyError(
            f"{cgroup.parent.parent}: no cgroup v1 freezer here; the lab needs it to freeze AZs"
        )
    try:
        for az in azs:
            (cgroup / az).mkdir(parents=True, exist_ok=True)
            (cgroup / az / "freezer.state").write_text("THAWED")
    except OSError as exc:
        raise PeakreadyError(f"{cgroup}: cannot create the lab's freezer cgroups: {exc}") from None


def cgroup_pids(group: Path) -> list[int]:
    try:
        return [int(line) for line in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def freezer_state(group: Path) -> str:
    try:
        return (group / "freezer.state").read_text().strip()
    except OSError:
        return "MISSING"


def remove_cgroups(cgroup: Path) -> None:
    """Remove the lab's cgroups (children first); they must be empty."""
    if not cgroup.exists():
        return
    for child in sorted(cgroup.iterdir(), reverse=True):
        if child.is_dir():
            try:
                child.rmdir()
            except OSError as exc:
                if exc.errno not in (errno.ENOENT,):
                    raise
    try:
        cgroup.rmdir()
        cgroup.parent.rmdir()  # .../peakready: only if no other lab uses it
    except OSError:
        pass


def make_cpu_group(group: Path, cores: float, instances: int = 1) -> None:
    """A cgroup v1 ``cpu`` group limited to ``cores`` CPU cores (an instance "size"),
    one of at most ``instances`` under the same parent.

    The parent (the lab's group) and its own (``peakready``) weigh as ``instances``
    processes. At the default weight every instance of the group together would count
    as one process against each of the lab's other servers once the cores are all
    busy, a starvation no instance on its own host suffers (measured on the surge: order
    p99 264-270 ms against 158-188 ms at the same load)."""
    try:
        group.mkdir(parents=True, exist_ok=True)
        for ancestor in (group.parent, group.parent.parent):
            (ancestor / "cpu.shares").write_text(str(PROCESS_SHARES * instances))
        (group / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(max(1000, round(cores * CPU_PERIOD_US))))
    except OSError as exc:
        raise PeakreadyError(f"{group}: cannot create a CPU-quota cgroup: {exc}") from None


def remove_group(group: Path) -> None:
    """Remove one cgroup and then its parent if that is empty (errors ignored: busy)."""
    for path in (group, group.parent):
        try:
            path.rmdir()
        except OSError:
            return


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (a postmaster's backends, a server script's VM)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used; 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --------------------------------------------------------------------------- starting


def spawn(
    cmd: list[str],
    *,
    env: Mapping[str, str],
    log: Path,
    cgroup: Path | None,
    cwd: Path,
    as_postgres: bool = False,
    cpu_group: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached (own session), output appended to ``log``.

    Before it execs, the child sets umask 077 and writes its own PID into
    ``<cgroup>/cgroup.procs`` so the server (and whatever it forks) lives in that freezer
    cgroup from its first instruction — and into ``cpu_group``'s, under its CPU quota.
    ``as_postgres`` runs it as the postgres user through ``setpriv``.
    """
    if as_postgres:
        cmd = as_postgres_user(cmd)
    procs_files = [str(g / "cgroup.procs") for g in (cgroup, cpu_group) if g is not None]

    def enter_cgroup() -> None:
        # Servers that rewrite their own files (Sentinel, Redis CONFIG REWRITE) keep
        # secrets in them: nothing the lab starts creates files others can read.
        os.umask(0o077)
        for procs_file in procs_files:
            with open(procs_file, "w") as handle:
                handle.write(str(os.getpid()))

    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
                preexec_fn=enter_cgroup,
                close_fds=True,
            )
        except OSError as exc:
            raise PeakreadyError(f"cannot start {cmd[0]}: {exc.strerror}") from None


# --------------------------------------------------------------------------- ports


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _listeners() -> Iterator[tuple[int, str]]:
    """``(port, socket inode)`` of every TCP socket in LISTEN state, per /proc/net."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                yield int(fields[1].rsplit(":", 1)[1], 16), fields[9]


def listening_ports(ports: Iterable[int]) -> list[int]:
    """Which of ``ports`` have a TCP socket in LISTEN state (any address), per /proc/net."""
    wanted = set(ports)
    return sorted({port for port, _ in _listeners() if port in wanted})


def listener_pid(port: int) -> int | None:
    """The PID of the process listening on TCP ``port`` (any address), if it is visible."""
    wanted = {f"socket:[{inode}]" for found, inode in _listeners() if found == port}
    if not wanted:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(entry.name)
        except OSError:
            continue
    return None


def lab_of(pid: int) -> Path | None:
    """The lab folder a process works in: its cwd or the nearest parent of it that holds
    a lab's ``state.json`` (PostgreSQL works in ``<lab>/pg/<az>``)."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    for folder in (cwd, *cwd.parents):
        if (folder / "state.json").is_file():
            return folder
    return None
