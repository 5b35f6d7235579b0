"""``lab up | status | down``: start the stack's shape from real servers, report, stop.

``up`` checks everything it can before starting anything (stack, binaries, state file,
ports), renders the configuration with the Ansible roles, starts every server detached
into its AZ's freezer cgroup, records real PIDs in ``state.json`` as it goes, and returns
only when every part is ready. On any failure or Ctrl-C it stops what it started.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.live import Live
from rich.table import Table

from peakready.errors import PeakreadyError
from peakready.lab import control, observe
from peakready.lab import proc as procmod
from peakready.lab.plan import (
    DIST_INDEX,
    RT_INDEX,
    STANZA,
    UP_TIMEOUT_S,
    Plan,
    make_plan,
)
from peakready.lab.render import Playbook, start_playbook
from peakready.lab.state import (
    APP_SLOTS,
    LabState,
    lab_dir,
    load_or_create_secrets,
)
from peakready.topology import Topology

# --------------------------------------------------------------------------- progress


class Tracker:
    """The live table ``up`` shows: one row per thing it waits on."""

    ICONS: ClassVar[dict[str, str]] = {
        "wait": "[yellow]…[/]",
        "ok": "[green]✔[/]",
        "fail": "[red]✘[/]",
    }

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def set(self, name: str, status: str, detail: str = "") -> None:
        with self.lock:
            if status == "ok":
                previous = self.rows.get(name)
                if previous and previous[0] == "ok" and previous[1].startswith(detail):
                    return
                detail = f"{detail} ({time.monotonic() - self.t0:.1f}s)"
            self.rows[name] = (status, detail)

    def pending(self) -> list[str]:
        return [name for name, (status, _) in self.rows.items() if status != "ok"]

    def __rich__(self) -> Table:
        table = Table(
            title=f"peakready lab up — {time.monotonic() - self.t0:4.1f}s", title_justify="left"
        )
        table.add_column("")
        table.add_column("part")
        table.add_column("state")
        with self.lock:
            for name, (status, detail) in self.rows.items():
                table.add_row(self.ICONS.get(status, status), name, detail)
        return table


# --------------------------------------------------------------------------- up


class Starter:
    """Starts one lab and records it; :meth:`abort` stops whatever it started."""

    def __init__(self, plan: Plan, tracker: Tracker) -> None:
        self.plan = plan
        self.tracker = tracker
        self.secrets: dict[str, str] = {}
        self.state = LabState(plan.lab / "state.json", {})
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.jobs: dict[str, Any] = {}
        self.playbook: Playbook | None = None
        self.etcd_healthy = False

    # ----------------------------------------------------------------- recording

    def record(self, entry: dict[str, Any]) -> None:
        self.state.data["processes"].append(entry)
        self.state.save()

    def start(
        self,
        name: str,
        kind: str,
        az: str | None,
        cmd: list[str],
        *,
        port: int,
        cwd: Path | None = None,
        as_postgres: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> int:
        plan = self.plan
        env = {
            "PATH": f"{plan.pg_bin_dir}:{Path(sys.executable).parent}:/usr/local/bin:"
            "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": "/var/lib/postgresql" if as_postgres else os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
        }
        if as_postgres:
            cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]
        log = plan.lab / "logs" / f"{name}.log"
        cwd = cwd or plan.lab
        group = plan.cgroup / az if az else plan.cgroup
        child = procmod.spawn(cmd, env=env, log=log, cgroup=group, cwd=cwd)
        entry: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "az": az,
            "pid": child.pid,
            "port": port,
            "log": str(log),
            "cwd": str(cwd),
            "cmd": cmd,
            "env": env,
            **(extra or {}),
        }
        self.record(entry)
        return child.pid

    # ----------------------------------------------------------------- steps

    def prepare(self) -> None:
        plan = self.plan
        plan.lab.mkdir(parents=True, exist_ok=True)
        os.chmod(plan.lab, 0o755)
        for path, owner, mode in plan.directories():
            path.mkdir(parents=True, exist_ok=True)
            shutil.chown(path, owner, owner)
            os.chmod(path, mode)
        self._check_postgres_access()
        procmod.ensure_cgroups(plan.cgroup, plan.azs)
        self.secrets = load_or_create_secrets(plan.lab)
        self.state.data = {
            "stack": plan.stack,
            "lab_dir": str(plan.lab),
            "port_base": plan.ports.base,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "ready": False,
            "azs": plan.azs,
            "cgroup": str(plan.cgroup),
            "processes": [],
            "outputs": plan.outputs(),
            "endpoints": plan.endpoints(),
        }
        self.state.save()

    def _check_postgres_access(self) -> None:
        """Patroni and PostgreSQL run as postgres: it must reach the lab folder and .venv."""
        patroni = self.plan.binaries["patroni"]
        probe = subprocess.run(
            [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "test",
                "-w",
                str(self.plan.pg_data(0)),
                "-a",
                "-x",
                patroni,
            ],
            cwd="/",
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            raise PeakreadyError(
                f"the postgres user cannot write {self.plan.pg_data(0)} or run {patroni}: "
                "a parent folder is not searchable by others (chmod o+x it, or set "
                "PEAKREADY_LAB_DIR to a folder such as /var/tmp/peakready)"
            )

    def start_etcd(self) -> None:
        plan, p = self.plan, self.plan.ports
        cluster = ",".join(
            f"etcd-{az}=http://127.0.0.1:{p.etcd_peer(i)}" for i, az in enumerate(plan.azs)
        )
        for i, az in enumerate(plan.azs):
            data = plan.lab / "etcd" / az
            self.start(
                f"etcd-{az}",
                "etcd",
                az,
                [
                    plan.binaries["etcd"],
                    f"--name=etcd-{az}",
                    f"--data-dir={data}",
                    f"--listen-client-urls=http://127.0.0.1:{p.etcd_client(i)}",
                    f"--advertise-client-urls=http://127.0.0.1:{p.etcd_client(i)}",
                    f"--listen-peer-urls=http://127.0.0.1:{p.etcd_peer(i)}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{p.etcd_peer(i)}",
                    f"--initial-cluster={cluster}",
                    "--initial-cluster-state=new",
                    f"--initial-cluster-token=peakready-{plan.stack}-{p.base}",
                    "--heartbeat-interval=100",
                    "--election-timeout=1000",
                    "--quota-backend-bytes=268435456",
                    "--logger=zap",
                    "--log-level=warn",
                ],
                port=p.etcd_client(i),
                extra={"peer_port": p.etcd_peer(i), "data_dir": str(data)},
            )

    def render(self) -> Playbook:
        self.tracker.set("configuration (ansible roles)", "wait", "rendering")
        return start_playbook(
            "lab.yml",
            self.plan.ansible_vars(self.secrets),
            self.plan.lab / "ansible",
            inventory=self.plan.inventory(),
        )

    def clear_stale_dcs(self) -> None:
        """A fresh bootstrap must not adopt a previous cluster's keys (LAB-NOTES)."""
        plan = self.plan
        if any((plan.pg_data(i) / "PG_VERSION").exists() for i in range(len(plan.azs))):
            return
        import base64
        import urllib.request

        prefix = f"/service/{plan.scope}/".encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.dumps(
            {
                "key": base64.b64encode(prefix).decode(),
                "range_end": base64.b64encode(end).decode(),
            }
        ).encode()
        url = f"http://127.0.0.1:{plan.ports.etcd_client(0)}/v3/kv/deleterange"
        request = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=3):
            pass

    def server_specs(self) -> list[dict[str, Any]]:
        """Every server started from a rendered file: name, kind, AZ, command, its file."""
        plan, p = self.plan, self.plan.ports
        specs: list[dict[str, Any]] = []
        for i, az in enumerate(plan.azs):
            config = plan.lab / "patroni" / f"{az}.yml"
            specs.append(
                {
                    "name": f"patroni-{az}",
                    "kind": "patroni",
                    "az": az,
                    "file": config,
                    "cmd": [plan.binaries["patroni"], str(config)],
                    "port": p.postgres(i),
                    "as_postgres": True,
                    "extra": {
                        "rest_port": p.patroni(i),
                        "member": plan.member(i),
                        "data_dir": str(plan.pg_data(i)),
                        "config": str(config),
                    },
                }
            )
        for i, az in enumerate(plan.azs):
            config = plan.lab / "redis" / f"{az}.conf"
            specs.append(
                {
                    "name": f"redis-{az}",
                    "kind": "redis",
                    "az": az,
                    "file": config,
                    "cmd": [plan.binaries["redis-server"], str(config)],
                    "port": p.redis(i),
                    "cwd": plan.lab / "redis" / az,
                    "extra": {"data_dir": str(plan.lab / "redis" / az)},
                }
            )
        for i, az in enumerate(plan.azs):
            config = plan.lab / "sphinx" / f"{az}.conf"
            specs.append(
                {
                    "name": f"searchd-{az}",
                    "kind": "searchd",
                    "az": az,
                    "file": config,
                    "cmd": [plan.binaries["searchd"], "--config", str(config), "--nodetach"],
                    "port": p.search_sql(i),
                    "extra": {
                        "api_port": p.search_api(i),
                        "data_dir": str(plan.lab / "sphinx" / az),
                    },
                }
            )
        config = plan.lab / "haproxy" / "haproxy.cfg"
        specs.append(
            {
                "name": "haproxy",
                "kind": "haproxy",
                "az": None,
                "file": config,
                "cmd": [plan.binaries["haproxy"], "-db", "-f", str(config)],
                "port": p.http,
                "extra": {
                    "db_write_port": p.db_write,
                    "db_read_port": p.db_read,
                    "stats_port": p.stats,
                    "socket": str(plan.lab / "haproxy.sock"),
                },
            }
        )
        return specs

    def remove_rendered(self) -> None:
        """Drop the files a previous ``up`` rendered: a file that exists is this run's."""
        for spec in self.server_specs():
            spec["file"].unlink(missing_ok=True)
        for az in self.plan.azs:
            (self.plan.lab / "sentinel" / az / "sentinel.conf").unlink(missing_ok=True)
        (self.plan.lab / "storefront" / "storefront.env").unlink(missing_ok=True)
        self.plan.pgbackrest_config.unlink(missing_ok=True)

    def start_rendered_servers(self) -> int:
        """Start each server whose configuration Ansible has written (templates land
        atomically), while the rest is still rendering; returns how many run."""
        started = {entry["name"] for entry in self.state.processes}
        for spec in self.server_specs():
            if spec["name"] in started or not spec["file"].exists():
                continue
            if spec["kind"] == "patroni" and not self.etcd_healthy:
                continue
            self.start(
                spec["name"],
                spec["kind"],
                spec["az"],
                spec["cmd"],
                port=spec["port"],
                cwd=spec.get("cwd"),
                as_postgres=spec.get("as_postgres", False),
                extra=spec["extra"],
            )
            started.add(spec["name"])
        return sum(1 for spec in self.server_specs() if spec["name"] in started)

    def start_sentinels(self) -> None:
        """Start each Sentinel whose file is rendered (once Redis replication is in sync)."""
        plan, p = self.plan, self.plan.ports
        started = {entry["name"] for entry in self.state.by_kind("sentinel")}
        for i, az in enumerate(plan.azs):
            config = plan.lab / "sentinel" / az / "sentinel.conf"
            if f"sentinel-{az}" in started or not config.exists():
                continue
            self.start(
                f"sentinel-{az}",
                "sentinel",
                az,
                [
                    plan.binaries["redis-sentinel"],
                    str(plan.lab / "sentinel" / az / "sentinel.conf"),
                ],
                port=p.sentinel(i),
                cwd=plan.lab / "sentinel" / az,
                extra={"data_dir": str(plan.lab / "sentinel" / az)},
            )

    def start_supervisor(self) -> None:
        plan = self.plan
        config = {
            "stack": plan.stack,
            "group": plan.app_group,
            "lab_dir": str(plan.lab),
            "desired": plan.topology.lab.app_instances,
            "azs": plan.azs,
            "cgroup": str(plan.cgroup),
            "port_base": plan.ports.base,
            "slots": APP_SLOTS,
            "env_file": str(plan.lab / "storefront" / "storefront.env"),
            "python": sys.executable,
            "haproxy_socket": str(plan.lab / "haproxy.sock"),
        }
        path = plan.lab / "supervisor.json"
        path.write_text(json.dumps(config, indent=2))
        (plan.lab / "app_group.json").unlink(missing_ok=True)
        self.start(
            "supervisor",
            "supervisor",
            None,
            [sys.executable, "-m", "peakready.lab.supervisor", str(path)],
            port=plan.ports.app(0),
            extra={"config": str(path)},
        )

    # ----------------------------------------------------------------- background jobs

    def launch(self, name: str, fn: Callable[[], Any]) -> None:
        if name not in self.jobs:
            self.jobs[name] = self.pool.submit(fn)

    def job_done(self, name: str) -> bool:
        job = self.jobs.get(name)
        if job is None or not job.done():
            return False
        job.result()  # re-raises the job's error
        return True

    def setup_database(self, leader_port: int) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1",
            port=leader_port,
            user="postgres",
            password=self.secrets["db_superuser_password"],
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            password = sql.Literal(self.secrets["db_app_password"])
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'shop'").fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE shop LOGIN PASSWORD {}").format(password))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'shop'").fetchone():
                conn.execute("CREATE DATABASE shop OWNER shop")

    def pgbackrest(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            self.plan.binaries["pgbackrest"],
            f"--config={self.plan.pgbackrest_config}",
            f"--stanza={STANZA}",
            *args,
        ]
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/tmp",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            check=False,
        )
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise PeakreadyError(
                f"pgbackrest {args[0]} failed (exit {result.returncode}): {last[-1][:300]}"
            )
        return result

    def setup_backup(self) -> None:
        self.tracker.set("pgBackRest stanza", "wait", "stanza-create")
        self.pgbackrest("stanza-create")
        self.tracker.set("pgBackRest stanza", "wait", "check (WAL archiving to repo1 + repo2)")
        self.pgbackrest("check")
        info = json.loads(self.pgbackrest("info", "--output=json").stdout or "[]")
        backups = len(info[0].get("backup", [])) if info else 0
        if not backups:
            self.tracker.set("pgBackRest stanza", "wait", "first full backup to repo1")
            self.pgbackrest("backup", "--repo=1", "--type=full", timeout=120)
            backups = 1
        self.tracker.set("pgBackRest stanza", "ok", f"stanza ok, WAL archived, {backups} backup(s)")

    def feed_search(self) -> int:
        """Copy the catalogue from the database into every searchd's RT index."""
        hosts = [(node["host"], node["port"]) for node in self.state.endpoints["search"]]
        try:
            from peakready.app.search import feed_sphinx as app_feed
        except ImportError:
            rows = fetch_catalogue(self.plan, self.secrets["db_app_password"])
            for host, port in hosts:
                feed_sphinx(host, port, rows)
            return len(rows)
        import psycopg

        with psycopg.connect(
            self.plan.dsn("any"), password=self.secrets["db_app_password"]
        ) as conn:
            return int(app_feed(hosts, RT_INDEX, conn))

    # ----------------------------------------------------------------- the whole thing

    def run(self) -> None:
        plan, tracker = self.plan, self.tracker
        for name in (
            "configuration (ansible roles)",
            "etcd",
            "Patroni leader",
            "Patroni sync standby",
            "database shop",
            "Redis replication",
            "Sentinels",
            "searchd",
            "pgBackRest stanza",
            "app instances",
            "search index fed",
            "HAProxy backends",
        ):
            tracker.set(name, "wait", "")
        self.prepare()
        self.remove_rendered()
        self.start_etcd()
        playbook = self.playbook = self.render()
        self._wait("etcd", self._etcd_ready, 20)
        self.clear_stale_dcs()
        self.etcd_healthy = True
        deadline = time.monotonic() + UP_TIMEOUT_S
        n = len(plan.azs)
        server_count = len(self.server_specs())
        catalogue = 0
        rendered = False
        while True:
            self._check_processes()
            started_count = self.start_rendered_servers()
            if not rendered and playbook.done():
                playbook.result()
                rendered = True
                tracker.set("configuration (ansible roles)", "ok", "rendered")
            elif not rendered:
                tracker.set(
                    "configuration (ansible roles)",
                    "wait",
                    f"rendering; {started_count}/{server_count} servers started already",
                )
            cluster = observe.patroni_cluster(self.state)
            leader = cluster["leader"]
            running = [m for m in cluster["members"] if m["state"] in ("running", "streaming")]
            if leader:
                tracker.set("Patroni leader", "ok", leader)
                leader_port = next(
                    m["port"] for m in self.state.endpoints["db_members"] if m["name"] == leader
                )
                self.launch("db", functools.partial(self.setup_database, leader_port))
                if plan.pgbackrest_config.exists():
                    self.launch("backup", self.setup_backup)
            else:
                tracker.set("Patroni leader", "wait", f"{len(running)}/{n} members running")
            if cluster["sync_standby"]:
                tracker.set("Patroni sync standby", "ok", ", ".join(cluster["sync_standby"]))
            else:
                tracker.set("Patroni sync standby", "wait", "waiting for a synchronous standby")
            if self.job_done("db"):
                tracker.set("database shop", "ok", "role and database shop")
                env_file = plan.lab / "storefront" / "storefront.env"
                if env_file.exists() and not self.state.by_kind("supervisor"):
                    self.start_supervisor()
            elif leader:
                tracker.set("database shop", "wait", "creating (commits wait for the sync standby)")

            replicas = self._redis_replicas()
            if replicas >= n - 1:
                tracker.set("Redis replication", "ok", f"primary + {replicas} replicas")
                self.start_sentinels()
            else:
                tracker.set("Redis replication", "wait", f"{replicas}/{n - 1} replicas in sync")
            if self.state.by_kind("sentinel"):
                sentinels = observe.sentinel_master(self.state)
                converged = sentinels_converged(sentinels, n)
                tracker.set(
                    "Sentinels",
                    "ok" if converged else "wait",
                    sentinel_detail(sentinels, n),
                )

            instances = (
                observe.app_instances(self.state) if self.state.by_kind("supervisor") else []
            )
            ready_apps = [i for i in instances if i["ready"]]
            desired = plan.topology.lab.app_instances
            tracker.set(
                "app instances",
                "ok" if len(ready_apps) == desired else "wait",
                f"{len(ready_apps)}/{desired} ready (/readyz)",
            )
            if ready_apps:
                self.launch("feed", self.feed_search)
            feed_done = self.job_done("feed")
            if feed_done:
                catalogue = self.jobs["feed"].result()
            answers = [
                observe.search_answers(node["host"], node["port"], DIST_INDEX, timeout=0.5)
                for node in self.state.endpoints["search"]
            ]
            answering = sum(1 for a in answers if a is not None)
            tracker.set("searchd", "ok" if answering == n else "wait", f"{answering}/{n} answering")
            fed = feed_done and all(a is not None and a >= min(catalogue, 1) for a in answers)
            tracker.set(
                "search index fed",
                "ok" if fed else "wait",
                f"{catalogue} products on every node" if fed else "after the app seeds",
            )
            self.job_done("backup")
            servers = observe.haproxy_servers(self.state)
            haproxy_ok, detail = haproxy_ready(servers, n, desired)
            tracker.set("HAProxy backends", "ok" if haproxy_ok else "wait", detail)
            if not tracker.pending():
                break
            if time.monotonic() > deadline:
                raise PeakreadyError(
                    f"lab not ready after {UP_TIMEOUT_S:.0f}s, still waiting for: "
                    f"{', '.join(tracker.pending())} (logs in {plan.lab / 'logs'})"
                )
            time.sleep(0.25)
        self.state.data["outputs"] = plan.outputs(leader)
        self.state.data["ready"] = True
        self.state.data["ready_after_s"] = round(time.monotonic() - tracker.t0, 1)
        self.state.save()
        self.pool.shutdown(wait=False)

    def _wait(self, name: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self._check_processes()
            if time.monotonic() > deadline:
                raise PeakreadyError(f"{name} not ready after {timeout:.0f}s")
            time.sleep(0.1)
        self.tracker.set(name, "ok", "healthy")

    def _etcd_ready(self) -> bool:
        health = observe.etcd_health(self.state)
        self.tracker.set("etcd", "wait", f"{sum(health.values())}/{len(health)} healthy")
        return all(health.values())

    def _redis_replicas(self) -> int:
        import redis

        client = redis.Redis(
            host="127.0.0.1",
            port=self.plan.ports.redis(0),
            password=self.secrets["redis_password"],
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        try:
            info: dict[str, Any] = client.info("replication")  # type: ignore[assignment]
        except (redis.RedisError, OSError):
            return 0
        finally:
            client.close()
        return sum(
            1
            for key, value in info.items()
            if key.startswith("slave")
            and isinstance(value, dict)
            and value.get("state") == "online"
        )

    def _check_processes(self) -> None:
        for entry in self.state.processes:
            if not procmod.alive(entry["pid"]):
                raise PeakreadyError(
                    f"{entry['name']} exited during start-up: {last_log_line(Path(entry['log']))}"
                    f" (log: {entry['log']})"
                )


def last_log_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:200] if lines else "empty log"


def sentinels_converged(view: dict[str, Any], n: int) -> bool:
    sentinels = view["sentinels"]
    return (
        bool(sentinels)
        and all(
            v is not None
            and v["num_slaves"] >= n - 1
            and v["num_other_sentinels"] >= n - 1
            and "down" not in v["flags"]
            for v in sentinels.values()
        )
        and view["agreed"]
    )


def sentinel_detail(view: dict[str, Any], n: int) -> str:
    parts = []
    for name, v in view["sentinels"].items():
        short = name.removeprefix("sentinel-")
        if v is None:
            parts.append(f"{short}: no answer")
        else:
            parts.append(
                f"{short}: {v['num_slaves']}/{n - 1} replicas, "
                f"{v['num_other_sentinels']}/{n - 1} peers"
            )
    return "; ".join(parts)


def haproxy_ready(servers: dict[str, str], n: int, desired: int) -> tuple[bool, str]:
    if not servers:
        return False, "admin socket not answering"
    write_up = [s for s, st in servers.items() if s.startswith("postgres_write/") and st == "UP"]
    read_up = [s for s, st in servers.items() if s.startswith("postgres_read/") and st == "UP"]
    app = {s: st for s, st in servers.items() if s.startswith("storefront/")}
    app_up = [s for s, st in app.items() if st == "UP"]
    ok = len(write_up) == 1 and len(read_up) == n - 1 and len(app_up) == len(app) == desired
    detail = f"write {len(write_up)}/1, read {len(read_up)}/{n - 1}, app {len(app_up)}/{desired} UP"
    return ok, detail


def fetch_catalogue(plan: Plan, password: str) -> list[tuple[int, str, float]]:
    import psycopg

    with psycopg.connect(
        plan.dsn("any").replace("connect_timeout=2", "connect_timeout=3"), password=password
    ) as conn:
        rows = conn.execute("SELECT id, name, price FROM products ORDER BY id").fetchall()
    return [(int(r[0]), str(r[1]), float(r[2])) for r in rows]


def feed_sphinx(host: str, port: int, rows: list[tuple[int, str, float]]) -> None:
    """REPLACE the catalogue into one node's RT index (idempotent), in batches."""
    import pymysql  # type: ignore[import-untyped]

    conn = pymysql.connect(host=host, port=port, user="", connect_timeout=3, autocommit=True)
    try:
        with conn.cursor() as cursor:
            for start in range(0, len(rows), 200):
                batch = rows[start : start + 200]
                values = ",".join(["(%s,%s,%s,%s)"] * len(batch))
                params: list[Any] = []
                for pid, name, price in batch:
                    params.extend([pid, name, name, price])
                cursor.execute(
                    f"REPLACE INTO {RT_INDEX} (id, name, title, price) VALUES {values}", params
                )
    finally:
        conn.close()


def up(topology: Topology, console: Console) -> int:
    """Start the lab of ``topology``; 0 when ready (or already running)."""
    plan = make_plan(topology)
    existing = running_state(topology.stack)
    if existing is not None:
        console.print(
            f"lab for stack {topology.stack} already running since {existing.data.get('started')} "
            f"({existing.lab_dir}); nothing changed. Endpoint: {existing.outputs.get('endpoint')}"
        )
        return 0
    plan.resolve_binaries()
    plan.check_ports()
    tracker = Tracker()
    starter = Starter(plan, tracker)
    try:
        with Live(tracker, console=console, refresh_per_second=4, transient=False):
            starter.run()
    except BaseException as exc:
        starter.pool.shutdown(wait=False, cancel_futures=True)
        if starter.playbook is not None:
            starter.playbook.cancel()
        console.print("[red]lab up failed[/]: stopping everything it started …")
        if starter.state.data:
            teardown(starter.state)
            if starter.state.path.exists():
                starter.state.path.replace(plan.lab / "state.last.json")
        if isinstance(exc, KeyboardInterrupt):
            raise PeakreadyError(
                "interrupted: lab up stopped everything it had started", exit_code=130
            ) from None
        if isinstance(exc, PeakreadyError):
            raise
        raise PeakreadyError(f"lab up failed: {type(exc).__name__}: {exc}") from None
    elapsed = time.monotonic() - tracker.t0
    outputs = starter.state.outputs
    console.print(
        f"[green]lab {plan.stack} ready[/] in {elapsed:.1f}s — endpoint {outputs['endpoint']}, "
        f"primary {outputs['db_primary']}, state {starter.state.path}"
    )
    return 0


def _runs(state: LabState, entry: dict[str, Any]) -> bool:
    """A recorded process still runs, and is still the lab's (PIDs get reused)."""
    return procmod.belongs(int(entry["pid"]), state.lab_dir, entry.get("data_dir"))


def running_state(stack: str) -> LabState | None:
    """The lab's state when its processes run; None when there is no state file.

    A state file whose recorded processes are all gone is stale: an error.
    """
    path = lab_dir(stack) / "state.json"
    if not path.exists():
        return None
    state = LabState.load(stack)
    procs = state.processes
    if procs and any(_runs(state, p) for p in procs):
        return state
    raise PeakreadyError(
        f"stale state file {path}: none of its recorded processes runs; "
        f"run `peakready lab down --stack {stack}` to clear it"
    )


# --------------------------------------------------------------------------- status


def health_report(state: LabState) -> dict[str, Any]:
    """Health per component and the live outputs (DESIGN §3)."""
    n = len(state.azs)
    components: list[dict[str, Any]] = []

    def add(name: str, healthy: bool, detail: str) -> None:
        components.append({"name": name, "healthy": bool(healthy), "detail": detail})

    with ThreadPoolExecutor(max_workers=8) as pool:
        f_cluster = pool.submit(observe.patroni_cluster, state)
        f_sentinel = pool.submit(observe.sentinel_master, state)
        f_roles = pool.submit(observe.redis_roles, state)
        f_haproxy = pool.submit(observe.haproxy_servers, state)
        f_apps = pool.submit(observe.app_instances, state)
        f_etcd = pool.submit(observe.etcd_health, state)
        f_search = [
            pool.submit(observe.search_answers, node["host"], node["port"], DIST_INDEX)
            for node in state.endpoints.get("search", [])
        ]
        f_http = pool.submit(observe.http_get, f"{state.outputs.get('endpoint')}/readyz")
    for entry in state.processes:
        ok = procmod.alive(entry["pid"]) and procmod.belongs(
            entry["pid"], state.lab_dir, entry.get("data_dir")
        )
        frozen = entry.get("az") and procmod.freezer_state(state.cgroup / entry["az"]) == "FROZEN"
        detail = f"pid {entry['pid']}, port {entry['port']}"
        if frozen:
            detail += ", AZ frozen"
        add(f"process {entry['name']}", ok and not frozen, detail if ok else "not running")
    etcd = f_etcd.result()
    add("etcd cluster", all(etcd.values()), f"{sum(etcd.values())}/{len(etcd)} members healthy")
    cluster = f_cluster.result()
    add(
        "database (Patroni)",
        # Every replica streaming, not merely running: a member still rewinding after a
        # fault is no standby yet, and a second fault then blocks writes (strict sync mode).
        bool(cluster["leader"] and cluster["sync_standby"])
        and len(cluster["members"]) == n
        and all(
            m["state"] == ("running" if m["name"] == cluster["leader"] else "streaming")
            for m in cluster["members"]
        ),
        f"leader {cluster['leader']}, sync {', '.join(cluster['sync_standby']) or 'none'}, "
        + ", ".join(f"{m['name']} {m['state']} lag {m['lag']}" for m in cluster["members"]),
    )
    sentinels = f_sentinel.result()
    roles = f_roles.result()
    add(
        "cache (Redis + Sentinel)",
        sentinels_converged(sentinels, n)
        and list(roles.values()).count("master") == 1
        and None not in roles.values(),
        f"master {sentinels['master']}; " + sentinel_detail(sentinels, n),
    )
    answers = [f.result() for f in f_search]
    add(
        "search (searchd)",
        bool(answers) and all(a is not None and a > 0 for a in answers),
        ", ".join(
            f"node {i}: {a if a is not None else 'no answer'}" for i, a in enumerate(answers)
        ),
    )
    apps = f_apps.result()
    desired = state.app_group().get("desired", 0)
    ready = sum(1 for a in apps if a["ready"])
    add(
        "app group (supervisor)",
        desired > 0 and ready == desired == len(apps),
        f"{ready}/{desired} instances ready: " + ", ".join(f"{a['id']}@{a['az']}" for a in apps),
    )
    servers = f_haproxy.result()
    ok, detail = haproxy_ready(servers, n, desired)
    add("load balancer (HAProxy)", ok, detail)
    status, _ = f_http.result()
    add("endpoint /readyz", status == 200, f"HTTP {status or 'no answer'}")
    outputs = state.outputs
    if cluster["leader"]:
        members = [m["name"] for m in state.endpoints.get("db_members", [])]
        outputs["db_primary"] = cluster["leader"]
        outputs["db_replicas"] = [m for m in members if m != cluster["leader"]]
    return {
        "healthy": all(c["healthy"] for c in components),
        "components": components,
        "outputs": outputs,
    }


def status(stack: str) -> tuple[int, dict[str, Any]]:
    """``(exit code, report)``: 0 healthy, 1 degraded, 2 no lab."""
    try:
        state = LabState.load(stack)
    except PeakreadyError as exc:
        return 2, {"healthy": False, "components": [], "outputs": {}, "error": exc.lines[0]}
    if not any(_runs(state, p) for p in state.processes):
        return 2, {
            "healthy": False,
            "components": [],
            "outputs": {},
            "error": f"stale state file {state.path}: no recorded process runs",
        }
    report = health_report(state)
    return (0 if report["healthy"] else 1), report


# --------------------------------------------------------------------------- down


def teardown(state: LabState) -> list[str]:
    """Stop every process ``state`` records (and any left in the lab's cgroups)."""
    problems: list[str] = []
    if not state.data.get("processes") and not state.data.get("cgroup"):
        return problems
    control.thaw_all(state)
    # Everything but etcd at once: the supervisor stops relaunching as soon as it gets
    # SIGTERM, app instances and servers shut down in parallel; Patroni stops its
    # PostgreSQL while etcd is still there to release the leader key.
    group = state.app_group()
    apps: list[tuple[int, str | None]] = [
        (int(i["pid"]), None) for i in group.get("instances", []) + group.get("terminating", [])
    ]
    servers = ["supervisor", "haproxy", "searchd", "sentinel", "redis", "patroni"]
    timings = _Timings(state.lab_dir / "logs" / "down.log")
    with timings("servers, supervisor and app instances"):
        control.stop_pids(state, _targets(state, servers) + apps, timeout=20)
    postmasters = [
        (pid, entry.get("data_dir"))
        for entry in state.by_kind("patroni")
        if (pid := control.postmaster_pid(entry)) is not None
    ]
    with timings(f"{len(postmasters)} postmasters Patroni left"):
        control.stop_pids(state, postmasters, timeout=10)
    with timings("etcd"):
        # etcd tries to hand over leadership while its peers are stopping too: no
        # point waiting for that.
        control.stop_pids(state, _targets(state, ["etcd"]), timeout=1.5)
    # Anything still in the lab's cgroups was started by the lab (app instances,
    # PostgreSQL children): stop it too.
    leftovers = [
        (pid, None)
        for sub in [state.cgroup, *(state.cgroup / az for az in state.azs)]
        for pid in procmod.cgroup_pids(sub)
    ]
    with timings(f"{len(leftovers)} leftovers in the lab's cgroups"):
        left = control.stop_pids(state, leftovers, timeout=5)
    if left:
        problems.append(f"processes still running: {left}")
    # A killed process may take a moment to finish exiting on a busy machine: its
    # cgroup stays busy and its ports open until then.
    deadline = time.monotonic() + 15
    while True:
        try:
            procmod.remove_cgroups(state.cgroup)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                problems.append(f"cannot remove {state.cgroup}: {exc}")
                break
            time.sleep(0.2)
    return problems


class _Timings:
    """Appends how long each phase of ``down`` took to ``<lab>/logs/down.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            with contextlib.suppress(OSError), self.path.open("a") as log:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                log.write(f"{stamp} stopped {what} in {time.monotonic() - started:.1f}s\n")


def _targets(state: LabState, kinds: list[str]) -> list[tuple[int, str | None]]:
    return [(int(e["pid"]), e.get("data_dir")) for e in state.processes if e["kind"] in kinds]


def _sweep_orphans(stack: str, folder: Path) -> int:
    """Stop what is left in this lab's cgroups when its state file is gone or broken."""
    try:
        plan = make_plan(Topology.load(stack))
    except PeakreadyError:
        return 0
    if not plan.cgroup.exists():
        return 0
    groups = [plan.cgroup, *(plan.cgroup / az for az in plan.azs)]
    count = sum(len(procmod.cgroup_pids(group)) for group in groups)
    orphan = LabState(
        folder / "state.json",
        {
            "stack": stack,
            "lab_dir": str(folder),
            "port_base": plan.ports.base,
            "azs": plan.azs,
            "cgroup": str(plan.cgroup),
            "processes": [],
        },
    )
    problems = teardown(orphan)
    if problems:
        raise PeakreadyError(f"lab down incomplete: {'; '.join(problems)}", exit_code=1)
    return count


def down(stack: str, console: Console, purge: bool = False) -> int:
    """Stop exactly what ``up`` started; safe to run twice. ``purge`` removes the lab folder."""
    folder = lab_dir(stack)
    path = folder / "state.json"
    if not path.exists():
        swept = _sweep_orphans(stack, folder)
        if swept:
            console.print(f"no state file, but stopped {swept} lab processes left in the cgroups")
        else:
            console.print(f"no lab running for stack {stack} ({folder}): nothing to stop")
    else:
        try:
            state: LabState | None = LabState.load(stack)
        except PeakreadyError:
            state = None
            path.unlink()
            _sweep_orphans(stack, folder)
        if state is not None:
            started = time.monotonic()
            problems = teardown(state)
            deadline = time.monotonic() + 10
            while (listening := procmod.listening_ports(state.ports.block)) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.2)
            if listening:
                problems.append(f"ports still listening: {listening}")
            if problems:
                raise PeakreadyError(f"lab down incomplete: {'; '.join(problems)}", exit_code=1)
            path.replace(folder / "state.last.json")
            console.print(
                f"lab {stack} stopped in {time.monotonic() - started:.1f}s: no process left, "
                f"no port listening in {state.ports.base}-{state.ports.block[-1]}"
            )
    if purge and folder.exists():
        shutil.rmtree(folder)
        console.print(f"removed {folder}")
    return 0
