"""What ``lab up`` derives from a topology before it starts anything.

:class:`Plan` names every server, folder, port and binary of one lab, and builds the
Ansible variables and inventory that render its configuration. Nothing here starts a
process.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peakready.errors import PeakreadyError
from peakready.lab import proc as procmod
from peakready.lab.state import APP_SLOTS, FREEZER_ROOT, Ports, lab_dir, port_base
from peakready.topology import Topology

#: Where a binary comes from when it is missing (named in the error).
PACKAGES = {
    "patroni": "PyPI patroni[etcd3,psycopg3] in .venv (make setup)",
    "postgres": "Debian package postgresql-15",
    "etcd": "Debian package etcd-server",
    "redis-server": "Debian package redis-server",
    "redis-sentinel": "Debian package redis-sentinel",
    "haproxy": "Debian package haproxy",
    "searchd": "Debian package sphinxsearch",
    "pgbackrest": "Debian package pgbackrest",
    "setpriv": "Debian package util-linux",
}
POSTGRES_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
STANZA = "peakready"
RT_INDEX, DIST_INDEX = "products_rt", "products"
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
        return FREEZER_ROOT / "peakready" / f"{self.stack}-{self.ports.base}"

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

    def resolve_binaries(self) -> None:
        """Find every server binary: the stack's override, then .venv / PATH."""
        overrides = dict(self.topology.lab.binaries)
        search = os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]
        )
        for name, package in PACKAGES.items():
            if name in overrides:
                path = Path(overrides[name])  # type: ignore[index]
                if not (path.is_file() and os.access(path, os.X_OK)):
                    raise PeakreadyError(
                        f"peakready:lab.binaries.{name}: {path} is not an executable file"
                    )
                self.binaries[name] = str(path)
                continue
            if name == "postgres":
                found = POSTGRES_BIN_DIR / "postgres"
                if not found.exists():
                    raise PeakreadyError(
                        f"postgres: not found in {POSTGRES_BIN_DIR} ({package}; run `make setup` "
                        "or set peakready:lab.binaries.postgres)"
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

    def check_ports(self) -> None:
        for port, what in sorted(self.ports.server_ports(len(self.azs)).items()):
            if procmod.port_in_use(port):
                raise PeakreadyError(
                    f"port {port} on 127.0.0.1 is in use (needed for {what}); stop what holds "
                    "it or choose another peakready:lab.port_base / PEAKREADY_LAB_PORT_BASE"
                )

    # ----------------------------------------------------------------- derived views

    def endpoints(self) -> dict[str, Any]:
        p, n = self.ports, len(self.azs)
        return {
            "http": f"http://127.0.0.1:{p.http}",
            "db_write": {"host": "127.0.0.1", "port": p.db_write},
            "db_read": {"host": "127.0.0.1", "port": p.db_read},
            "db_members": [
                {
                    "name": self.member(i),
                    "host": "127.0.0.1",
                    "port": p.postgres(i),
                    "rest_port": p.patroni(i),
                    "az": self.azs[i],
                }
                for i in range(n)
            ],
            "redis": [
                {"host": "127.0.0.1", "port": p.redis(i), "az": self.azs[i]} for i in range(n)
            ],
            "sentinels": [
                {"host": "127.0.0.1", "port": p.sentinel(i), "az": self.azs[i]} for i in range(n)
            ],
            "sentinel_master": self.sentinel_master,
            "search": [
                {"host": "127.0.0.1", "port": p.search_sql(i), "az": self.azs[i]} for i in range(n)
            ],
            "search_index": DIST_INDEX,
            "search_rt_index": RT_INDEX,
            "etcd": [f"http://127.0.0.1:{p.etcd_client(i)}" for i in range(n)],
            "haproxy_socket": str(self.lab / "haproxy.sock"),
            "haproxy_stats": f"http://127.0.0.1:{p.stats}/",
            "pgbackrest": {
                "config": str(self.pgbackrest_config),
                "stanza": STANZA,
                "binary": self.binaries.get("pgbackrest", "pgbackrest"),
                "repos": [str(self.lab / "backup" / "repo1"), str(self.lab / "backup" / "repo2")],
            },
            "database": "shop",
            "db_user": "shop",
        }

    def outputs(self, leader: str | None = None) -> dict[str, Any]:
        members = [self.member(i) for i in range(len(self.azs))]
        primary = leader or members[0]
        return {
            "stack": self.stack,
            "target": "lab",
            "availability_zones": self.azs,
            "endpoint": f"http://127.0.0.1:{self.ports.http}",
            "app_group": self.app_group,
            "db_primary": primary,
            "db_replicas": [m for m in members if m != primary],
            "cache_group": self.sentinel_master,
            "search_domain": f"search-{self.stack}",
            "backup_vault": str(self.lab / "backup"),
        }

    def dsn(self, attrs: str) -> str:
        n = len(self.azs)
        hosts = ",".join(["127.0.0.1"] * n)
        ports = ",".join(str(self.ports.postgres(i)) for i in range(n))
        return (
            f"host={hosts} port={ports} dbname=shop user=shop "
            f"target_session_attrs={attrs} connect_timeout=2"
        )

    def member_vars(self, i: int) -> dict[str, Any]:
        """Host variables of AZ ``i``'s inventory host: its members of each tier."""
        p, lab, az = self.ports, self.lab, self.azs[i]
        pgbackrest_cmd = (
            f"{self.binaries['pgbackrest']} --config={self.pgbackrest_config} --stanza={STANZA}"
        )
        return {
            "patroni_member": {
                "name": self.member(i),
                "az": az,
                "port": p.postgres(i),
                "rest_port": p.patroni(i),
                "data_dir": str(self.pg_data(i)),
                "config_path": str(lab / "patroni" / f"{az}.yml"),
                "pgpass_path": str(lab / "patroni" / f"{az}.pgpass"),
                "socket_dir": str(self.socket_dir),
                "log_dir": str(lab / "logs" / f"postgres-{az}"),
                # archive-push insists that pg1-path is the archiving server's own.
                "archive_command": f"{pgbackrest_cmd} --pg1-path={self.pg_data(i)} archive-push %p",
            },
            "sentinel_redis_node": {
                "name": f"redis-{az}",
                "az": az,
                "port": p.redis(i),
                "config_path": str(lab / "redis" / f"{az}.conf"),
                "dir": str(lab / "redis" / az),
            },
            "sentinel_node": {
                "name": f"sentinel-{az}",
                "az": az,
                "port": p.sentinel(i),
                "config_path": str(lab / "sentinel" / az / "sentinel.conf"),
                "dir": str(lab / "sentinel" / az),
            },
            "sphinx_node": {
                "name": f"searchd-{az}",
                "az": az,
                "sql_port": p.search_sql(i),
                "api_port": p.search_api(i),
                "config_path": str(lab / "sphinx" / f"{az}.conf"),
                "data_dir": str(lab / "sphinx" / az),
                "log_dir": str(lab / "logs"),
            },
        }

    def inventory(self) -> dict[str, Any]:
        """One host per AZ and a regional one, all this machine (rendered in parallel)."""
        return {
            "lab": {
                "children": {
                    "lab_regional": {"hosts": {"regional": {}}},
                    "lab_azs": {
                        "hosts": {f"az-{az}": self.member_vars(i) for i, az in enumerate(self.azs)}
                    },
                },
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                },
            }
        }

    def directories(self) -> list[tuple[Path, str, int]]:
        """``(path, owner, mode)`` of every folder the servers need, made before rendering."""
        lab = self.lab
        dirs: list[tuple[Path, str, int]] = [
            (lab / sub, "root", 0o755)
            for sub in ("logs", "etcd", "haproxy", "redis", "sentinel", "sphinx")
        ]
        dirs += [
            (lab / "storefront", "root", 0o700),
            (lab / "run", "postgres", 0o755),
            (lab / "pg", "postgres", 0o700),
            (lab / "patroni", "postgres", 0o700),
            (lab / "backup", "postgres", 0o750),
            (lab / "pgbackrest", "postgres", 0o750),
        ]
        for sub in ("backup/repo1", "backup/repo2", "pgbackrest/log", "pgbackrest/lock"):
            dirs.append((lab / sub, "postgres", 0o750))
        dirs.append((lab / "pgbackrest" / "spool", "postgres", 0o750))
        for i, az in enumerate(self.azs):
            dirs += [
                (self.pg_data(i), "postgres", 0o700),
                (lab / "logs" / f"postgres-{az}", "postgres", 0o700),
                (lab / "redis" / az, "root", 0o700),
                (lab / "sentinel" / az, "root", 0o700),
                (lab / "sphinx" / az, "root", 0o755),
            ]
        return dirs

    def ansible_vars(self, secrets: dict[str, str]) -> dict[str, Any]:
        """Variables shared by every host (secrets included: they go to a 0600 file)."""
        p, n, lab = self.ports, len(self.azs), self.lab
        return {
            "patroni_manage_directories": False,
            "sentinel_manage_directories": False,
            "sphinx_manage_directories": False,
            "pgbackrest_manage_directories": False,
            "storefront_manage_directories": False,
            "haproxy_binary": self.binaries["haproxy"],
            "haproxy_config_path": str(lab / "haproxy" / "haproxy.cfg"),
            "haproxy_http_port": p.http,
            "haproxy_db_write_port": p.db_write,
            "haproxy_db_read_port": p.db_read,
            "haproxy_stats_port": p.stats,
            "haproxy_socket_path": str(lab / "haproxy.sock"),
            "haproxy_app_slots": APP_SLOTS,
            "haproxy_app_placeholder_port": p.app(0),
            "haproxy_db_members": [
                {"name": self.member(i), "port": p.postgres(i), "rest_port": p.patroni(i)}
                for i in range(n)
            ],
            "patroni_scope": self.scope,
            "patroni_etcd_hosts": [f"127.0.0.1:{p.etcd_client(i)}" for i in range(n)],
            "patroni_bin_dir": self.pg_bin_dir,
            "patroni_superuser_password": secrets["db_superuser_password"],
            "patroni_replication_password": secrets["db_replication_password"],
            "sentinel_primary_port": p.redis(0),
            "sentinel_master_name": self.sentinel_master,
            "sentinel_redis_password": secrets["redis_password"],
            "sphinx_mirror_ports": [p.search_api(i) for i in range(n)],
            "sphinx_rt_index": RT_INDEX,
            "sphinx_dist_index": DIST_INDEX,
            "pgbackrest_config_path": str(self.pgbackrest_config),
            "pgbackrest_stanza": STANZA,
            "pgbackrest_repo_paths": [str(lab / "backup" / "repo1"), str(lab / "backup" / "repo2")],
            "pgbackrest_log_path": str(lab / "pgbackrest" / "log"),
            "pgbackrest_lock_path": str(lab / "pgbackrest" / "lock"),
            "pgbackrest_spool_path": str(lab / "pgbackrest" / "spool"),
            "pgbackrest_members": [
                {
                    "data_dir": str(self.pg_data(i)),
                    "port": p.postgres(i),
                    "socket_dir": str(self.socket_dir),
                }
                for i in range(n)
            ],
            "storefront_mode": "lab",
            "storefront_env_path": str(lab / "storefront" / "storefront.env"),
            "storefront_db_dsn": self.dsn("read-write"),
            "storefront_db_read_dsn": self.dsn("prefer-standby"),
            "storefront_db_password": secrets["db_app_password"],
            "storefront_redis_sentinels": ",".join(f"127.0.0.1:{p.sentinel(i)}" for i in range(n)),
            "storefront_redis_master": self.sentinel_master,
            "storefront_redis_password": secrets["redis_password"],
            "storefront_search_backend": "sphinx",
            "storefront_search_hosts": ",".join(f"127.0.0.1:{p.search_sql(i)}" for i in range(n)),
            "storefront_search_index": DIST_INDEX,
            "storefront_audit_token": secrets["audit_token"],
            "storefront_migrate": True,
            "storefront_seed_products": self.topology.lab.products,
            "storefront_initial_stock": self.topology.lab.initial_stock,
        }


def make_plan(topology: Topology) -> Plan:
    return Plan(topology=topology, lab=lab_dir(topology.stack), ports=Ports(port_base(topology)))
