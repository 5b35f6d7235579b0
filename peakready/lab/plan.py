"""What ``lab up`` derives from a topology before it starts anything.

:class:`Plan` names the lab's folder, port block, cgroup, binaries and the names its
components share (members, scope, master name, DSNs). What each component adds is in
its own module; :mod:`peakready.lab.assembly` puts them together. Nothing here starts
a process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from peakready.errors import PeakreadyError
from peakready.lab import proc as procmod
from peakready.lab.state import FREEZER_ROOT, Ports, lab_dir, port_base
from peakready.topology import Topology

#: Where PostgreSQL's own binaries live (Debian's postgresql-15); Patroni finds them here.
POSTGRES_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_BIN_DIR = Path("/usr/lib/rabbitmq/bin")
#: Binaries found in their package's own folder, not on PATH: PostgreSQL's server, and
#: RabbitMQ's scripts (``/usr/sbin/rabbitmq-server`` would ``su`` to the rabbitmq user).
FIXED_BINARIES = {
    "postgres": POSTGRES_BIN_DIR / "postgres",
    "rabbitmq-server": RABBITMQ_BIN_DIR / "rabbitmq-server",
    "rabbitmqctl": RABBITMQ_BIN_DIR / "rabbitmqctl",
}
UP_TIMEOUT_S = 110.0


@dataclass
class Plan:
    """Everything ``up`` derives from the topology before it starts anything."""

    topology: Topology
    lab: Path
    ports: Ports
    binaries: dict[str, str] = field(default_factory=dict)

    @property
    def stack(self) -> str:
        return self.topology.stack

    @property
    def azs(self) -> list[str]:
        return self.topology.az_names

    @property
    def cgroup(self) -> Path:
        """The lab's freezer cgroup, keyed by its folder: two labs never share one."""
        digest = hashlib.sha256(str(self.lab).encode()).hexdigest()[:12]
        return FREEZER_ROOT / "peakready" / f"{self.stack}-{digest}"

    @property
    def scope(self) -> str:
        return f"peakready-{self.stack}"

    @property
    def sentinel_master(self) -> str:
        return f"peakready-{self.stack}"

    @property
    def app_group(self) -> str:
        return f"storefront-{self.stack}"

    @property
    def pgbackrest_config(self) -> Path:
        return self.lab / "pgbackrest" / "pgbackrest.conf"

    def member(self, i: int) -> str:
        return f"pg-{self.azs[i]}"

    def pg_data(self, i: int) -> Path:
        return self.lab / "pg" / self.azs[i]

    @property
    def socket_dir(self) -> Path:
        return self.lab / "run"

    @property
    def az_range(self) -> range:
        return range(len(self.azs))

    def resolve_binaries(self, packages: dict[str, str]) -> None:
        """Find each binary of ``packages`` (name → where it comes from): the stack's
        override, then .venv / PATH."""
        overrides = dict(self.topology.lab.binaries)
        search = os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]
        )
        for name, package in packages.items():
            if name in overrides:
                path = Path(overrides[name])  # type: ignore[index]
                if not (path.is_file() and os.access(path, os.X_OK)):
                    raise PeakreadyError(
                        f"peakready:lab.binaries.{name}: {path} is not an executable file"
                    )
                self.binaries[name] = str(path)
                continue
            if name in FIXED_BINARIES:
                found = FIXED_BINARIES[name]
                if not found.exists():
                    raise PeakreadyError(
                        f"{name}: not found in {found.parent} ({package}; run `make setup` "
                        f"or set peakready:lab.binaries.{name})"
                    )
                self.binaries[name] = str(found)
                continue
            which = shutil.which(name, path=search)
            if which is None:
                raise PeakreadyError(
                    f"{name}: not found on PATH ({package}; run `make setup` or set "
                    f"peakready:lab.binaries.{name})"
                )
            self.binaries[name] = which

    @property
    def pg_bin_dir(self) -> str:
        return str(Path(self.binaries["postgres"]).parent)

    def check_ports(self, ports: dict[int, str]) -> None:
        """Refuse when one of ``ports`` (port → what listens there) is taken; when another
        lab holds it, name that lab's folder."""
        for port, what in sorted(ports.items()):
            if procmod.port_in_use(port):
                owner = procmod.listener_pid(port)
                other = procmod.lab_of(owner) if owner else None
                if other is not None and other != self.lab:
                    raise PeakreadyError(
                        f"port block {self.ports.base}-{self.ports.block[-1]} is in use by the lab "
                        f"in {other} (port {port}); stop it (PEAKREADY_LAB_DIR={other} peakready "
                        "lab down) or choose another peakready:lab.port_base / "
                        "PEAKREADY_LAB_PORT_BASE"
                    )
                raise PeakreadyError(
                    f"port {port} on 127.0.0.1 is in use (needed for {what}); stop what holds "
                    "it or choose another peakready:lab.port_base / PEAKREADY_LAB_PORT_BASE"
                )

    def dsn(self, attrs: str) -> str:
        n = len(self.azs)
        hosts = ",".join(["127.0.0.1"] * n)
        ports = ",".join(str(self.ports.postgres(i)) for i in range(n))
        return (
            f"host={hosts} port={ports} dbname=shop user=shop "
            f"target_session_attrs={attrs} connect_timeout=2"
        )


def make_plan(topology: Topology) -> Plan:
    return Plan(topology=topology, lab=lab_dir(topology.stack), ports=Ports(port_base(topology)))
