"""Where a lab lives and what it recorded: folders, ports, ``state.json``, secrets.

The contract is docs/internals.md §"The lab". ``lab up`` alone writes ``state.json``;
everything else (status, down, the chaos driver) reads it through :class:`LabState`.
"""

from __future__ import annotations

import json
import os
import secrets as secrets_mod
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peakready.errors import PeakreadyError
from peakready.topology import REPO_ROOT, Topology

#: Root of the lab's freezer cgroups (cgroup v1).
FREEZER_ROOT = Path("/sys/fs/cgroup/freezer")
#: Root of the storefront instances' CPU-quota cgroups (cgroup v1 ``cpu``).
CPU_ROOT = Path("/sys/fs/cgroup/cpu")

APP_SLOTS = 50
#: Prometheus's file-based discovery of the app group's instances, written by the
#: supervisor whenever the group changes (relative to the lab's folder).
APP_METRICS_TARGETS = "monitoring/storefront-targets.json"
#: The supervisor's own figures (desired, instances, instances lost), for
#: node_exporter's textfile collector: the lab's twin of the ASG's metrics.
APP_GROUP_METRICS = "monitoring/textfile/app_group.prom"
#: The back-office worker group: its slots (ports ``Ports.backoffice``), what the
#: supervisor publishes of it, and the file that sets its desired capacity.
BACKOFFICE_SLOTS = 6
BACKOFFICE_METRICS_TARGETS = "monitoring/backoffice-targets.json"
BACKOFFICE_GROUP = "backoffice_group.json"
BACKOFFICE_DESIRED = "backoffice/desired"
#: The worker group's scaling decisions (JSON lines, as the app group's SCALING_FILE).
BACKOFFICE_SCALING = "backoffice/scaling.jsonl"


def cpu_cgroup_of(freezer_group: Path) -> Path:
    """The lab's CPU-quota cgroup: the same name as its freezer cgroup, under CPU_ROOT."""
    return CPU_ROOT / freezer_group.relative_to(FREEZER_ROOT)


def lab_dir(stack: str) -> Path:
    """The lab folder: ``$PEAKREADY_LAB_DIR``, else ``<repo>/.lab/<stack>``."""
    override = os.environ.get("PEAKREADY_LAB_DIR")
    if override is None:
        return REPO_ROOT / ".lab" / stack
    if not override.strip():
        raise PeakreadyError("PEAKREADY_LAB_DIR: empty, expected a folder (or unset it)")
    path = Path(override).expanduser().resolve()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PeakreadyError(
            f"PEAKREADY_LAB_DIR={override}: {existing} is a file, expected a folder"
        )
    return path


def port_base(topology: Topology) -> int:
    """First port of the lab's block; ``PEAKREADY_LAB_PORT_BASE`` overrides the stack's."""
    override = os.environ.get("PEAKREADY_LAB_PORT_BASE")
    if override is None:
        return topology.lab.port_base
    if not override.isdigit() or not 1024 <= int(override) <= 32000:
        raise PeakreadyError(
            f"PEAKREADY_LAB_PORT_BASE={override!r}: expected a port from 1024 to 32000"
        )
    return int(override)


@dataclass(frozen=True)
class Ports:
    """The lab's port block (internals.md, "Ports")."""

    base: int

    @property
    def http(self) -> int:
        return self.base

    @property
    def db_write(self) -> int:
        return self.base + 1

    @property
    def db_read(self) -> int:
        return self.base + 2

    @property
    def stats(self) -> int:
        return self.base + 3

    def amqp(self, i: int) -> int:
        return self.base + 4 + i

    def amqp_dist(self, i: int) -> int:
        return self.base + 7 + i

    @property
    def epmd(self) -> int:
        return self.base + 13

    @property
    def amqp_cli(self) -> range:
        """The distribution ports ``rabbitmqctl`` may take (one per concurrent call)."""
        return range(self.base + 14, self.base + 20)

    def backoffice(self, slot: int) -> int:
        return self.base + 83 + slot

    @property
    def backoffice_db(self) -> int:
        return self.base + 26

    @property
    def backoffice_report_db(self) -> int:
        return self.base + 27

    @property
    def backoffice_http(self) -> int:
        """HAProxy's front of the back-office workers: the ``backoffice_endpoint`` output."""
        return self.base + 28

    def etcd_client(self, i: int) -> int:
        return self.base + 10 + i

    def etcd_peer(self, i: int) -> int:
        return self.base + 20 + i

    def postgres(self, i: int) -> int:
        return self.base + 30 + i

    def patroni(self, i: int) -> int:
        return self.base + 40 + i

    def redis(self, i: int) -> int:
        return self.base + 50 + i

    def sentinel(self, i: int) -> int:
        return self.base + 60 + i

    def search_sql(self, i: int) -> int:
        return self.base + 70 + i

    def search_api(self, i: int) -> int:
        return self.base + 80 + i

    def app(self, slot: int) -> int:
        return self.base + 100 + slot

    @property
    def block(self) -> range:
        """Every port the lab may listen on (scratch servers included)."""
        return range(self.base, self.base + 160)


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_create_secrets(folder: Path, keys: tuple[str, ...]) -> dict[str, str]:
    """The lab's generated secrets (``secrets.json``, 0600), one per key in ``keys``.

    Keys already there keep their value (a data directory may hold its password);
    missing or empty ones are generated.
    """
    path = folder / "secrets.json"
    data: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError:
            loaded = {}
        if isinstance(loaded, dict):
            data = {k: v for k, v in loaded.items() if isinstance(v, str) and v}
    missing = [key for key in keys if key not in data]
    if missing or not path.exists():
        data.update({key: secrets_mod.token_urlsafe(24) for key in missing})
        write_json_atomic(path, data, mode=0o600)
    return {key: data[key] for key in keys}


class LabState:
    """What ``lab up`` recorded in ``<lab>/state.json``."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, stack: str) -> LabState:
        """The running lab of ``stack``; ``PeakreadyError(exit_code=2)`` when there is none."""
        path = lab_dir(stack) / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise PeakreadyError(
                f"no lab running for stack {stack!r}: no {path} (start one with "
                f"`peakready lab up --stack {stack}`)",
                exit_code=2,
            ) from None
        except json.JSONDecodeError as exc:
            raise PeakreadyError(
                f"{path}: not valid JSON ({exc.msg}); run `peakready lab down --stack {stack}`",
                exit_code=2,
            ) from None
        return cls(path, data)

    # ----------------------------------------------------------------- plain fields

    @property
    def stack(self) -> str:
        return str(self.data["stack"])

    @property
    def lab_dir(self) -> Path:
        return Path(self.data["lab_dir"])

    @property
    def port_base(self) -> int:
        return int(self.data["port_base"])

    @property
    def ports(self) -> Ports:
        return Ports(self.port_base)

    @property
    def azs(self) -> list[str]:
        return list(self.data["azs"])

    @property
    def cgroup(self) -> Path:
        return Path(self.data["cgroup"])

    @property
    def cpu_cgroup(self) -> Path:
        return cpu_cgroup_of(self.cgroup)

    @property
    def processes(self) -> list[dict[str, Any]]:
        return list(self.data.get("processes", []))

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.data.get("outputs", {}))

    @property
    def endpoints(self) -> dict[str, Any]:
        return dict(self.data.get("endpoints", {}))

    @property
    def ready(self) -> bool:
        """Whether ``up`` finished (a partial state is left by an interrupted ``up``)."""
        return bool(self.data.get("ready", False))

    def process(self, name: str) -> dict[str, Any]:
        """The recorded process called ``name``."""
        for proc in self.processes:
            if proc["name"] == name:
                return proc
        known = ", ".join(p["name"] for p in self.processes)
        raise PeakreadyError(f"no lab process named {name!r}; known: {known}")

    def by_kind(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.processes if p["kind"] == kind]

    def in_az(self, az: str) -> list[dict[str, Any]]:
        return [p for p in self.processes if p.get("az") == az]

    def secrets(self) -> dict[str, str]:
        return dict(json.loads((self.lab_dir / "secrets.json").read_text()))

    def app_group(self) -> dict[str, Any]:
        """``app_group.json`` as the supervisor last wrote it (empty group if none yet)."""
        return self.group("app_group.json")

    def backoffice_group(self) -> dict[str, Any]:
        """The back-office workers, as the supervisor last wrote them."""
        return self.group(BACKOFFICE_GROUP)

    def group(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.lab_dir / name).read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"desired": 0, "instances": [], "terminating": []}

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def replace_process(self, proc: dict[str, Any]) -> None:
        """Record a restarted process (new PID) under its name."""
        self.data["processes"] = [
            proc if p["name"] == proc["name"] else p for p in self.data["processes"]
        ]
        self.save()
