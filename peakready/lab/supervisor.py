"""The lab's app-group supervisor: an Auto Scaling group in miniature.

``python -m peakready.lab.supervisor <lab>/supervisor.json`` keeps ``desired`` storefront
instances running, spread over the AZs, each under a CPU quota (its "instance type").
A lost instance (dead, or alive but not answering ``/healthz``, e.g. frozen with its
AZ) is terminated and replaced in a healthy AZ — the one with the fewest instances, as
an ASG rebalances — on the next free slot. HAProxy's server-template slots are kept in
step through the admin socket. ``desired`` follows the scaling policy
(``peakready.lab.autoscaler``): target tracking on requests per target, read from
HAProxy's counters once per tick; scale-in removes an instance from the AZ with the
most. The group is published in ``<lab>/app_group.json``, and every scaling decision
and change of the instances in service is appended to ``<lab>/scaling.jsonl``
(docs/internals.md).

The supervisor is regional: it lives in no AZ's cgroup, so freezing an AZ never
freezes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peakready.lab import proc as procmod
from peakready.lab.autoscaler import (
    SCALING_FILE,
    SCALING_RESET,
    SCALING_SUSPENDED,
    Autoscaler,
    Sample,
    ScalingPolicy,
)
from peakready.lab.observe import haproxy_command, http_get
from peakready.lab.state import APP_GROUP_METRICS, APP_METRICS_TARGETS, write_json_atomic

log = logging.getLogger("peakready.lab.supervisor")

TICK_S = 0.5
#: Consecutive failed liveness probes after which a started instance counts as lost.
LOST_AFTER_FAILURES = 3
#: How long a new instance may take to answer ``/healthz`` before it counts as lost.
START_GRACE_S = 45.0
HAPROXY_BACKEND = "storefront"


@dataclass
class Instance:
    id: str
    az: str
    slot: int
    port: int
    pid: int
    started: str
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = field(default_factory=time.monotonic)
    live: bool = False
    failures: int = 0
    up_since: float | None = None  # epoch seconds HAProxy first reported it UP

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "az": self.az,
            "pid": self.pid,
            "port": self.port,
            "slot": self.slot,
            "started": self.started,
        }


class Supervisor:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.lab_dir = Path(config["lab_dir"])
        self.azs: list[str] = list(config["azs"])
        self.desired = int(config["desired"])
        self.slots = int(config["slots"])
        self.port_base = int(config["port_base"])
        self.cgroup = Path(config["cgroup"])
        self.socket = str(config["haproxy_socket"])
        self.group_file = self.lab_dir / "app_group.json"
        self.instances: list[Instance] = []
        self.terminating: list[Instance] = []
        self.cursor = 0
        self.stopping = False
        self.last_sync = 0.0
        self.app_env = self._app_env()
        self.cpu_cgroup = Path(config["cpu_cgroup"])
        self.policy = ScalingPolicy.from_dict(config["scaling"])
        self.scaler = Autoscaler(self.policy, self.desired)
        self.scaling_file = self.lab_dir / SCALING_FILE
        self.in_service = -1
        self.lost = 0  # instances found dead or failing /healthz, and replaced

    # ----------------------------------------------------------------- environment

    def _app_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }
        for line in Path(self.config["env_file"]).read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#") and value:
                env[key.strip()] = value
        return env

    # ----------------------------------------------------------------- group file

    def adopt(self) -> None:
        """Take over instances a previous supervisor left running (after a restart)."""
        try:
            data = json.loads(self.group_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        for rec in data.get("instances", []):
            if procmod.alive(rec["pid"]) and procmod.belongs(rec["pid"], self.lab_dir):
                inst = Instance(
                    rec["id"], rec["az"], rec["slot"], rec["port"], rec["pid"], rec["started"]
                )
                inst.live = True
                self.instances.append(inst)
                self.cursor = max(self.cursor, rec["slot"] + 1) % self.slots

    def publish(self) -> None:
        targets = self.lab_dir / APP_METRICS_TARGETS
        if targets.parent.is_dir():  # the lab has a monitoring tier
            self.publish_metrics()
            write_json_atomic(
                targets,
                [
                    {
                        "targets": [f"127.0.0.1:{i.port}"],
                        "labels": {"instance_id": i.id, "az": i.az},
                    }
                    for i in self.instances
                ],
            )
        write_json_atomic(
            self.group_file,
            {
                "group": self.config["group"],
                "desired": self.desired,
                "instances": [i.record() for i in self.instances],
                "terminating": [i.record() for i in self.terminating],
                "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    def publish_metrics(self) -> None:
        """The group's figures in Prometheus's text format, renamed into place (the
        textfile collector reads only ``*.prom``)."""
        path = self.lab_dir / APP_GROUP_METRICS
        path.parent.mkdir(mode=0o700, exist_ok=True)
        lines = [
            "# HELP peakready_app_group_desired Instances the group wants",
            "# TYPE peakready_app_group_desired gauge",
            f"peakready_app_group_desired {self.desired}",
            "# HELP peakready_app_group_instances Instances the group runs",
            "# TYPE peakready_app_group_instances gauge",
            f"peakready_app_group_instances {len(self.instances)}",
            "# HELP peakready_app_group_instances_lost_total Instances found dead or "
            "failing /healthz, and replaced",
            "# TYPE peakready_app_group_instances_lost_total counter",
            f"peakready_app_group_instances_lost_total {self.lost}",
        ]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)

    # ----------------------------------------------------------------- placement

    def az_healthy(self, az: str) -> bool:
        if procmod.freezer_state(self.cgroup / az) not in ("THAWED", "MISSING"):
            return False
        return not any(i.az == az and i.failures > 0 for i in self.instances)

    def pick_az(self) -> str | None:
        healthy = [az for az in self.azs if self.az_healthy(az)]
        if not healthy:
            return None
        counts = {az: sum(1 for i in self.instances if i.az == az) for az in healthy}
        return min(healthy, key=lambda az: (counts[az], self.azs.index(az)))

    def next_slot(self) -> int | None:
        used = {i.slot for i in self.instances + self.terminating}
        for step in range(self.slots):
            slot = (self.cursor + step) % self.slots
            if slot not in used:
                self.cursor = (slot + 1) % self.slots
                return slot
        return None

    # ----------------------------------------------------------------- lifecycle

    def launch(self) -> Instance | None:
        if self.stopping:
            return None
        az, slot = self.pick_az(), self.next_slot()
        if az is None or slot is None:
            return None
        port = self.port_base + 100 + slot
        inst_id = f"app-{slot}"
        env = {
            **self.app_env,
            "PEAKREADY_APP_HOST": "127.0.0.1",
            "PEAKREADY_APP_PORT": str(port),
            "PEAKREADY_APP_AZ": az,
            "PEAKREADY_APP_INSTANCE_ID": inst_id,
        }
        cpu_group = self.cpu_cgroup / inst_id
        procmod.make_cpu_group(cpu_group, self.policy.cpu_quota)
        popen = procmod.spawn(
            [self.config["python"], "-m", "peakready.app"],
            env=env,
            log=self.lab_dir / "logs" / f"{inst_id}.log",
            cgroup=self.cgroup / az,
            cwd=self.lab_dir,
            cpu_group=cpu_group,
        )
        inst = Instance(
            inst_id,
            az,
            slot,
            port,
            popen.pid,
            datetime.now(UTC).isoformat(timespec="seconds"),
            popen,
        )
        self.instances.append(inst)
        log.info("launched %s in %s on port %d (pid %d)", inst_id, az, port, popen.pid)
        self.haproxy_enable(inst)
        return inst

    def terminate(self, inst: Instance, reason: str) -> None:
        log.warning("instance %s in %s lost (%s): terminating", inst.id, inst.az, reason)
        self.lost += 1
        self.haproxy_disable(inst.slot)
        self.instances.remove(inst)
        if procmod.alive(inst.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(inst.pid, signal.SIGKILL)  # delivered at thaw if its AZ is frozen
        self.terminating.append(inst)

    def scale_in(self) -> None:
        """Retire the newest instance of the AZ with the most (an ASG keeps AZs balanced):
        out of HAProxy first, then SIGTERM, which lets it finish what it serves."""
        counts = {az: sum(1 for i in self.instances if i.az == az) for az in self.azs}
        az = max(self.azs, key=lambda a: (counts[a], self.azs.index(a)))
        inst = max((i for i in self.instances if i.az == az), key=lambda i: i.started_at)
        log.info("scale-in: retiring %s in %s", inst.id, inst.az)
        self.haproxy_disable(inst.slot)
        self.instances.remove(inst)
        with contextlib.suppress(ProcessLookupError):
            os.kill(inst.pid, signal.SIGTERM)
        self.terminating.append(inst)

    def check(self, inst: Instance) -> None:
        if inst.popen is not None:
            inst.popen.poll()
        if not procmod.alive(inst.pid):
            self.terminate(inst, "process exited")
            return
        status, _ = http_get(f"http://127.0.0.1:{inst.port}/healthz", timeout=1.0)
        if status == 200:
            inst.live, inst.failures = True, 0
            return
        if not inst.live:
            if time.monotonic() - inst.started_at > START_GRACE_S:
                self.terminate(inst, f"no /healthz within {START_GRACE_S:.0f}s")
            return
        inst.failures += 1
        if inst.failures >= LOST_AFTER_FAILURES:
            self.terminate(inst, f"/healthz failed {inst.failures} times")

    def reap(self) -> None:
        for inst in list(self.terminating):
            if inst.popen is not None:
                inst.popen.poll()
            if not procmod.alive(inst.pid):
                self.terminating.remove(inst)
                procmod.remove_group(self.cpu_cgroup / inst.id)

    # ----------------------------------------------------------------- scaling

    def record(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(OSError), self.scaling_file.open("a") as out:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")

    def autoscale(self) -> None:
        """One tick of the scaling policy: sample HAProxy and the instances' CPU, apply
        the decision, and record instances in service whenever their count changes."""
        stats = self._haproxy(f"show stat {HAPROXY_BACKEND} 6 -1")
        if not stats:
            return
        now = time.time()
        header, *rows = stats.splitlines()
        names = header.lstrip("# ").split(",")
        by_server = {}
        for row in rows:
            values = dict(zip(names, row.split(","), strict=False))
            by_server[values.get("svname", "")] = values
        backend = by_server.get("BACKEND", {})
        served = 0
        in_service: list[Instance] = []
        for inst in self.instances:
            server = by_server.get(f"app{inst.slot}", {})
            served += int(server.get("req_tot") or 0)
            if server.get("status", "").startswith("UP"):
                inst.up_since = inst.up_since or now
                if now - inst.up_since >= self.policy.warmup_s:
                    in_service.append(inst)
            else:
                inst.up_since = None
        sample = Sample(
            at=now,
            requests=int(backend.get("req_tot") or 0),
            served=served,
            cpu_s=sum(procmod.cpu_seconds(i.pid) for i in in_service),
            in_service=len(in_service),
        )
        reset = self.lab_dir / SCALING_RESET
        if reset.exists():
            decision = self.scaler.reset(now)
            reset.unlink(missing_ok=True)
        else:
            decision = self.scaler.observe(sample)
        if decision is not None and (self.lab_dir / SCALING_SUSPENDED).exists():
            self.scaler.desired = decision.previous  # suspended: measured, not acted on
            decision = None
        if decision is not None:
            log.info(
                "scaling: desired %d -> %d (%s: %.1f/s per target, target %.1f/s)",
                decision.previous,
                decision.desired,
                decision.reason,
                decision.metric,
                decision.target,
            )
            self.desired = decision.desired
            self.record(decision.as_dict())
        serving = sum(1 for i in self.instances if i.up_since is not None)
        if serving != self.in_service or decision is not None:
            self.in_service = serving
            self.record(
                {
                    "event": "in_service",
                    "at": now,
                    "in_service": serving,
                    "desired": self.desired,
                    "metric": round(self.scaler.metric, 2),
                    "target": round(self.scaler.target, 2),
                }
            )

    # ----------------------------------------------------------------- HAProxy

    def _haproxy(self, command: str) -> str:
        try:
            return haproxy_command(self.socket, command)
        except OSError as exc:
            log.warning("haproxy socket: %s: %s", command, exc)
            return ""

    def haproxy_enable(self, inst: Instance) -> None:
        server = f"{HAPROXY_BACKEND}/app{inst.slot}"
        self._haproxy(f"set server {server} addr 127.0.0.1 port {inst.port}")
        self._haproxy(f"set server {server} state ready")

    def haproxy_disable(self, slot: int) -> None:
        self._haproxy(f"set server {HAPROXY_BACKEND}/app{slot} state maint")

    def haproxy_sync(self) -> None:
        """Re-apply the group to HAProxy (it forgets run-time changes when restarted)."""
        answer = self._haproxy(f"show servers state {HAPROXY_BACKEND}")
        wanted = {i.slot: i for i in self.instances}
        for line in answer.splitlines():
            fields = line.split()
            if len(fields) < 19 or not fields[3].startswith("app") or fields[0].startswith("#"):
                continue
            slot = int(fields[3][3:])
            # srv_admin_state: 0x01 is forced maintenance (`disabled` at start and
            # `state maint`); 0x04 only records that the config said `disabled`.
            in_maint = bool(int(fields[6]) & 0x01)
            port = int(fields[18])
            inst = wanted.get(slot)
            if inst is None and not in_maint:
                self.haproxy_disable(slot)
            elif inst is not None and (in_maint or port != inst.port):
                self.haproxy_enable(inst)

    # ----------------------------------------------------------------- loop

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        everyone = self.instances + self.terminating
        for inst in everyone:
            self.haproxy_disable(inst.slot)
            if procmod.alive(inst.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(inst.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(procmod.alive(i.pid) for i in everyone):
            for inst in everyone:
                if inst.popen is not None:
                    inst.popen.poll()
            time.sleep(0.05)
        for inst in everyone:
            if procmod.alive(inst.pid):
                os.kill(inst.pid, signal.SIGKILL)
            procmod.remove_group(self.cpu_cgroup / inst.id)
        self.instances, self.terminating = [], []
        self.publish()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.adopt()
        self.haproxy_sync()
        self.publish()
        while not self.stopping:
            before = (
                [i.record() for i in self.instances],
                len(self.terminating),
                self.desired,
                self.lost,
            )
            for inst in list(self.instances):
                self.check(inst)
            self.reap()
            self.autoscale()
            while len(self.instances) < self.desired and self.launch() is not None:
                pass
            while len(self.instances) > self.desired:
                self.scale_in()
            if time.monotonic() - self.last_sync > 2.0:
                self.haproxy_sync()
                self.last_sync = time.monotonic()
            after = (
                [i.record() for i in self.instances],
                len(self.terminating),
                self.desired,
                self.lost,
            )
            if after != before:
                self.publish()
            time.sleep(TICK_S)
        self.shutdown()


@contextlib.contextmanager
def scaling_suspended(lab_dir: Path) -> Iterator[None]:
    """The group of the lab in ``lab_dir`` keeps its size meanwhile (ASG SuspendProcesses):
    for measurements of a fixed group."""
    marker = lab_dir / SCALING_SUSPENDED
    marker.touch()
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m peakready.lab.supervisor <lab>/supervisor.json", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = json.loads(Path(args[0]).read_text())
    Supervisor(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
