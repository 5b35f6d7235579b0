"""The lab driver: faults on the lab's own processes, found by recorded PID and AZ.

Every signal goes through :mod:`peakready.lab.control`, which checks that a PID
belongs to the lab before touching it (DESIGN §9). A power loss freezes the AZ's
cgroup; restoring thaws it, restarts whatever was killed and waits until the whole
lab is healthy again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from chaoslib.exceptions import ActivityFailed
from rich.console import Console

from peakready.errors import PeakreadyError
from peakready.lab import control, health, observe, start
from peakready.lab import proc as procmod
from peakready.lab.assembly import COMPONENTS
from peakready.lab.autoscaler import SCALING_FILE, SCALING_RESET
from peakready.lab.components.backoffice import ready_workers, set_desired
from peakready.lab.components.monitoring import alertmanager_fetch, unsettled_alerts
from peakready.lab.components.queue import Cluster
from peakready.lab.health import LabStatus
from peakready.lab.state import LabState
from peakready.load.rawhttp import Connection, Request
from peakready.load.records import read_jsonl
from peakready.monitoring.detection import Seen
from peakready.targets.base import restore_uninterruptibly
from peakready.topology import Topology

#: Restart order after faults: the components' start order (consensus first, then
#: the servers that depend on it).
RESTART_ORDER = tuple(component.kind for component in COMPONENTS)
#: Requests HAProxy lets into one storefront instance at once (haproxy_app_maxconn).
LAB_MAXCONN = 4
#: Seconds the capacity probe counts (after one second of warm-up).
PROBE_S = 3.0


def lab_healthy(stack: str) -> bool:
    """Whether ``peakready lab status`` would exit 0."""
    try:
        return health.status(stack)[0] == LabStatus.HEALTHY
    except PeakreadyError:
        return False


def ensure_lab(topology: Topology, console: Console) -> None:
    """Bring the lab up when none runs; repair it when it runs degraded (a drill's start).

    Repairs run with Ctrl-C and SIGTERM ignored until done, so that a drill interrupted
    there still leaves a whole lab.
    """
    code, _ = health.status(topology.stack)
    if code == LabStatus.NOT_RUNNING:
        console.print(f"lab of stack {topology.stack}: not running, starting it")
        start.up(topology, console)
    elif code == LabStatus.DEGRADED:
        console.print(f"lab of stack {topology.stack}: degraded, restoring it")
        restore_uninterruptibly(lambda: LabDriver(topology.stack), console)
    code, _ = health.status(topology.stack)
    if code != LabStatus.HEALTHY:
        raise PeakreadyError(
            f"lab of stack {topology.stack} is not healthy: see `peakready lab status`",
            exit_code=1,
        )


class LabDriver:
    """:class:`~peakready.targets.base.Driver` for the local lab of ``stack``."""

    target = "lab"

    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.state = LabState.load(stack)

    def outputs(self) -> dict[str, Any]:
        return self.state.outputs

    # app tier ---------------------------------------------------------------
    def app_instances(self) -> list[dict[str, Any]]:
        return [
            {"id": i["id"], "az": i.get("az"), "healthy": bool(i["ready"]), "port": i["port"]}
            for i in observe.app_instances(self._fresh())
        ]

    def app_group_at_desired(self) -> dict[str, Any]:
        desired = int(self._fresh().app_group().get("desired", 0))
        healthy = sum(1 for i in self.app_instances() if i["healthy"])
        return {"desired": desired, "healthy": healthy, "ok": desired > 0 and healthy >= desired}

    def kill_app_instance(self, az: str | None = None) -> dict[str, Any]:
        candidates = [i for i in self.app_instances() if i["healthy"] and az in (None, i["az"])]
        if not candidates:
            raise ActivityFailed(f"kill app instance: no healthy instance{_in(az)}")
        victim = candidates[0]
        pid = self._signal(victim["id"])
        return {"id": victim["id"], "az": victim["az"], "pid": pid}

    def capacity_per_instance(self) -> tuple[float, str]:
        """Requests/s one instance serves at its CPU quota: a short closed-loop probe of
        product reads and searches sent to one instance straight (not through HAProxy,
        whose counters the autoscaler reads), as many at once as HAProxy lets in."""
        instances = [i for i in self.app_instances() if i["healthy"]]
        if not instances:
            raise ActivityFailed("capacity probe: no app instance in service")
        lab = Topology.load(self.stack).lab
        requests = [Request("GET", f"/products/{1 + i % lab.products}") for i in range(7)]
        requests += [Request("GET", f"/search?q={term}") for term in ("Lamp", "green")]
        port = int(instances[0]["port"])
        rate = asyncio.run(_closed_loop(port, LAB_MAXCONN, requests, PROBE_S))
        if not rate:
            raise ActivityFailed("capacity probe: no request succeeded")
        return rate, f"probe: {rate:.0f} requests/s on one instance of {lab.app_cpu_quota:g} CPU"

    def reset_app_group(self, timeout_s: float = 20.0) -> dict[str, Any]:
        """Set the group back to its resting size (see ``SCALING_RESET``) and wait, at most
        ``timeout_s``, until the supervisor has applied it: ``{"desired", "instances"}``."""
        marker = self.state.lab_dir / SCALING_RESET
        marker.touch()
        deadline = time.monotonic() + timeout_s
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        group = self._fresh().app_group()
        while len(group.get("instances", [])) > int(group.get("desired", 0)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
            group = self._fresh().app_group()
        return {"desired": group.get("desired"), "instances": len(group.get("instances", []))}

    def alerts(self) -> list[dict[str, Any]] | None:
        if "alertmanager" not in self.state.endpoints:
            return None  # a lab started before it had a monitoring tier
        return alertmanager_fetch(self.state)()

    def unsettled_alerts(self) -> list[str] | None:
        if "prometheus" not in self.state.endpoints:
            return None
        return unsettled_alerts(self.state)

    def alert_history(self, since: float, until: float) -> list[Seen] | None:
        return None  # Alertmanager keeps no history: the watcher's polls are the record

    def scaling_timeline(self, since: float) -> list[dict[str, Any]]:
        # The last count before ``since`` too: how many served when the run began.
        rows = read_jsonl(self.state.lab_dir / SCALING_FILE)
        earlier = [
            r for r in rows if float(r.get("at", 0)) < since and r.get("event") == "in_service"
        ]
        return earlier[-1:] + [r for r in rows if float(r.get("at", 0)) >= since]

    # a whole availability zone ------------------------------------------------
    def power_off_az(self, az: str) -> dict[str, Any]:
        try:
            pids = control.freeze_az(self.state, az)
        except (PeakreadyError, OSError) as exc:
            raise ActivityFailed(f"power off {az}: {exc}") from None
        return {"az": az, "frozen_processes": len(pids)}

    def power_on_az(self, az: str) -> dict[str, Any]:
        try:
            control.thaw_az(self.state, az)
        except (PeakreadyError, OSError) as exc:
            raise ActivityFailed(f"power on {az}: {exc}") from None
        return {"az": az}

    # database -----------------------------------------------------------------
    def db_primary(self) -> dict[str, Any]:
        cluster = observe.patroni_cluster(self.state)
        leader = cluster.get("leader")
        if not leader:
            raise ActivityFailed("database primary: Patroni reports no leader")
        return {"id": leader, "az": self._member(leader).get("az")}

    def fail_database_primary(self) -> dict[str, Any]:
        primary = self.db_primary()
        patroni = next(
            (p for p in self.state.by_kind("patroni") if p.get("az") == primary["az"]), None
        )
        if patroni is None:
            raise ActivityFailed(f"fail database primary: no Patroni process in {primary['az']}")
        postmaster = control.postmaster_pid(patroni)
        backends = procmod.children(postmaster) if postmaster else []
        # The whole node at once: Patroni, its postmaster and every backend.
        self._signal(patroni["name"])
        for pid in [postmaster, *backends]:
            if pid:
                control.signal_pid(self.state, pid, signal.SIGKILL, patroni.get("data_dir"))
        return {**primary, "process": patroni["name"], "postmaster": postmaster}

    def stale_primary_rejects_writes(self, member_id: str, window_s: float = 5.0) -> dict[str, Any]:
        member = self._member(member_id)
        password = self.state.secrets()["db_superuser_password"]
        seen = {"accepted": 0, "read_only": 0, "unreachable": 0, "unacknowledged": 0}
        deadline = time.monotonic() + window_s
        attempts = 0
        while attempts == 0 or time.monotonic() < deadline:
            attempts += 1
            seen[_try_write(member["host"], int(member["port"]), password)] += 1
            time.sleep(0.25)
        return {"member": member_id, "attempts": attempts, **seen, "ok": seen["accepted"] == 0}

    # cache ------------------------------------------------------------------
    def cache_primary(self) -> dict[str, Any]:
        view = observe.sentinel_master(self.state)
        master = view.get("master")
        redis = next(
            (p for p in self.state.by_kind("redis") if master and master.endswith(f":{p['port']}")),
            None,
        )
        if redis is None:
            raise ActivityFailed(f"cache primary: no lab Redis at {master}")
        return {"id": redis["name"], "az": redis.get("az"), "agreed": bool(view.get("agreed"))}

    def fail_cache_primary(self) -> dict[str, Any]:
        redis = self.state.process(self.cache_primary()["id"])
        pid = self._signal(redis["name"])
        return {"id": redis["name"], "az": redis.get("az"), "pid": pid}

    def stop_cache(self) -> dict[str, Any]:
        return {"stopped": [self._kill_quietly(p["name"]) for p in self.state.by_kind("redis")]}

    # search -----------------------------------------------------------------
    def kill_search_node(self, az: str | None = None) -> dict[str, Any]:
        nodes = [
            p
            for p in self.state.by_kind("searchd")
            if az in (None, p.get("az")) and procmod.alive(p["pid"])
        ]
        if not nodes:
            raise ActivityFailed(f"kill search node: no running node{_in(az)}")
        pid = self._signal(nodes[0]["name"])
        return {"id": nodes[0]["name"], "az": nodes[0].get("az"), "pid": pid}

    def stop_search(self) -> dict[str, Any]:
        return {"stopped": [self._kill_quietly(p["name"]) for p in self.state.by_kind("searchd")]}

    # order pipeline -------------------------------------------------------------
    def stop_consumers(self, timeout_s: float = 15.0) -> dict[str, Any]:
        """The back-office group's desired capacity to 0, as UpdateAutoScalingGroup does
        on AWS: the supervisor SIGTERMs each worker, which finishes the delivery in hand."""
        lab = self._fresh()
        if "backoffice_desired" not in lab.endpoints:
            raise ActivityFailed("stop consumers: the lab has no back-office workers")
        workers = [w["id"] for w in lab.backoffice_group().get("instances", [])]
        set_desired(lab.lab_dir, 0)
        left = self._wait_group(
            lambda group: not group.get("instances") and not group.get("terminating"), timeout_s
        )
        still = [w["id"] for w in left.get("instances", []) + left.get("terminating", [])]
        return {"stopped": workers, "still_running": still}

    def start_consumers(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The group back at the lab's size, then wait until that many consume (more,
        when its policy scales it out for the backlog)."""
        lab = self._fresh()
        desired = int(lab.endpoints.get("backoffice_desired", 0))
        if not desired:
            raise ActivityFailed("start consumers: the lab has no back-office workers")
        before = {w["id"] for w in lab.backoffice_group().get("instances", [])}
        set_desired(lab.lab_dir, desired)
        self._wait_group(lambda _: len(ready_workers(self.state)) >= desired, timeout_s)
        consuming = len(ready_workers(self.state))
        if consuming < desired:
            raise ActivityFailed(
                f"back-office workers: {consuming}/{desired} consuming after {timeout_s:.0f}s"
            )
        now = self.state.backoffice_group().get("instances", [])
        return {"started": [w["id"] for w in now if w["id"] not in before]}

    def _wait_group(
        self, done: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any]:
        """The back-office group once ``done`` holds for it, or as it is at the deadline."""
        deadline = time.monotonic() + timeout_s
        while not done(group := self._fresh().backoffice_group()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return group

    def queue_leader(self) -> dict[str, Any]:
        queue = Topology.load(self.stack).queue
        if queue is None:
            raise ActivityFailed("queue leader: the stack has no queue tier")
        try:
            leader = Cluster.of_state(self.state).leader(queue.queue_name)
        except PeakreadyError as exc:
            raise ActivityFailed(f"queue leader: {exc}") from None
        node = next((p for p in self.state.by_kind("rabbitmq") if p.get("node") == leader), None)
        if node is None:
            raise ActivityFailed(f"queue leader: no lab broker node is {leader or 'leading'}")
        return {"id": node["name"], "az": node.get("az"), "node": leader}

    def fail_queue_leader(self) -> dict[str, Any]:
        leader = self.queue_leader()
        # The node is the server script's child (beam.smp): both die at once.
        control.signal_tree(self.state, leader["id"], signal.SIGKILL)
        return {**leader, "pid": self.state.process(leader["id"])["pid"]}

    # rollback ----------------------------------------------------------------
    def restore(self, timeout_s: float = 120.0) -> dict[str, Any]:
        try:
            control.thaw_all(self.state)
            if desired := self.state.endpoints.get("backoffice_desired"):
                set_desired(self.state.lab_dir, int(desired))  # workers a fault stopped
            restarted = []
            for kind in RESTART_ORDER:
                for proc in self._fresh().by_kind(kind):
                    if not procmod.alive(proc["pid"]):
                        control.restart_process(self.state, proc["name"])
                        restarted.append(proc["name"])
            report = control.wait_healthy(self._fresh(), timeout=timeout_s)
        except (PeakreadyError, OSError) as exc:
            raise ActivityFailed(f"restore: {exc}") from None
        return {"thawed": self.state.azs, "restarted": restarted, "healthy": report["healthy"]}

    # private
    def _fresh(self) -> LabState:
        """Re-read state.json: restarts record new PIDs there."""
        self.state = LabState.load(self.stack)
        return self.state

    def _member(self, name: str) -> dict[str, Any]:
        for member in self.state.endpoints.get("db_members", []):
            if member["name"] == name:
                return dict(member)
        raise ActivityFailed(f"database member {name!r}: not in the lab's state")

    def _signal(self, name: str, sig: int = signal.SIGKILL) -> int:
        try:
            return control.kill_process(self.state, name, sig)
        except PeakreadyError as exc:
            raise ActivityFailed(f"kill {name}: {exc}") from None

    def _kill_quietly(self, name: str) -> str:
        with contextlib.suppress(PeakreadyError):  # already down: that is what was asked
            control.kill_process(self.state, name, signal.SIGKILL)
        return name


async def _closed_loop(port: int, clients: int, requests: list[Request], seconds: float) -> float:
    """``clients`` keep-alive clients send ``requests`` round robin back to back for one
    second of warm-up and ``seconds`` more (127.0.0.1 only); answers 200/s counted."""
    start = time.monotonic()
    counting, end = start + 1.0, start + 1.0 + seconds
    served = [0]

    async def client(n: int) -> None:
        conn = Connection(port, timeout_s=5.0)
        try:
            while (now := time.monotonic()) < end:
                try:
                    status = await conn.request(requests[n % len(requests)])
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    await asyncio.sleep(0.05)
                    continue
                n += clients
                if status == 200 and now >= counting:
                    served[0] += 1
        finally:
            conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return served[0] / seconds


def _in(az: str | None) -> str:
    return f" in {az}" if az else ""


def _try_write(host: str, port: int, password: str, wait_s: float = 2.0) -> str:
    """One direct write on a member: accepted, read_only, unreachable or unacknowledged.

    A primary without a standby holds the commit until one confirms it, and
    ``statement_timeout`` never covers that wait (PostgreSQL disables it before the
    commit): the probe cancels it from here after ``wait_s``, which commits locally with
    a warning. The table is dropped at that commit: a temporary table left for the
    backend's exit would be dropped by one more commit that waits for a standby for
    ever, and would hold up the postmaster's shutdown, which is how Patroni demotes a
    stale primary (measured: a demotion blocked for 14 min)."""
    notices: list[str] = []
    try:
        with psycopg.connect(
            host=host,
            port=port,
            user="postgres",
            password=password,
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        ) as conn:
            conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
            cancel = threading.Timer(wait_s, conn.cancel)
            cancel.start()
            try:
                conn.execute("CREATE TEMP TABLE peakready_stale_probe (x int) ON COMMIT DROP")
            finally:
                cancel.cancel()
    except psycopg.errors.ReadOnlySqlTransaction:
        return "read_only"
    except psycopg.errors.QueryCanceled:
        return "unacknowledged"  # cancelled before its commit: nothing was written
    except psycopg.OperationalError:
        return "unreachable"
    if any("synchronous replication" in n for n in notices):
        return "unacknowledged"  # committed locally only, never confirmed by a standby
    return "accepted"
