"""The lab's supervisor: Auto Scaling groups in miniature.

``python -m peakready.lab.supervisor <lab>/supervisor.json`` keeps each group's
``desired`` instances running, spread over the AZs: the storefront's app group, each
instance under a CPU quota (its "instance type"), and the back office's workers when the
stack has a queue tier.
A lost instance (dead, or alive but not answering ``/healthz``, e.g. frozen with its
AZ) is terminated and replaced in a healthy AZ — the one with the fewest instances, as
an ASG rebalances — on the next free slot. HAProxy's server-template slots are kept in
step through the admin socket. The app group's ``desired`` follows its scaling policy
(``peakready.lab.autoscaler``): target tracking on requests per target, read from
HAProxy's counters once per tick; scale-in removes an instance from the AZ with the
most. The back-office group's desired capacity is what ``<lab>/backoffice/desired``
says (the lab's UpdateAutoScalingGroup; 0 until the queue and the back office's
database exist), raised by its policy while orders wait: target tracking on the
queue's backlog per worker, read from the broker in the background. Each group is
published in its own file (``<lab>/app_group.json``, ``<lab>/backoffice_group.json``);
every scaling decision and change of the app instances in service is appended to
``<lab>/scaling.jsonl``, the workers' decisions to ``<lab>/backoffice/scaling.jsonl``
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
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peakready import pipeline
from peakready.errors import PeakreadyError
from peakready.lab import proc as procmod
from peakready.lab.autoscaler import (
    SCALING_FILE,
    SCALING_RESET,
    SCALING_SUSPENDED,
    Autoscaler,
    BacklogPolicy,
    BacklogScaler,
    Decision,
    Sample,
    ScalingPolicy,
)
from peakready.lab.observe import haproxy_command, http_get
from peakready.lab.state import write_json_atomic

log = logging.getLogger("peakready.lab.supervisor")

TICK_S = 0.5
#: Consecutive failed liveness probes after which a started instance counts as lost.
LOST_AFTER_FAILURES = 3
#: How long a new instance may take to answer ``/healthz`` before it counts as lost.
START_GRACE_S = 45.0
#: Each ``/healthz`` probe's timeout, and how many run at once.
PROBE_TIMEOUT_S = 1.0
PROBE_THREADS = 8
#: How often the backlog is read from the broker, and how old a reading may be to count.
BACKLOG_EVERY_S = 1.0
BACKLOG_STALE_S = 5.0


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


class Group:
    """One group the supervisor keeps: its instances, their placement and lifecycle,
    and its HAProxy backend. ``config`` is one entry of ``supervisor.json``'s ``groups``;
    ``shared`` holds the lab-wide keys (lab dir, cgroups, HAProxy's socket)."""

    def __init__(self, shared: dict[str, Any], config: dict[str, Any]) -> None:
        self.config = config
        self.name = str(config["name"])
        self.lab_dir = Path(shared["lab_dir"])
        self.azs: list[str] = list(shared["azs"])
        self.desired = int(config["desired"])
        self.slots = int(config["slots"])
        self.slot_port = int(config["slot_port"])
        self.cgroup = Path(shared["cgroup"])
        self.cpu_cgroup = Path(shared["cpu_cgroup"])
        self.socket = str(shared["haproxy_socket"])
        self.backend = str(config["haproxy_backend"])
        self.prefix = str(config["server_prefix"])
        self.env_prefix = str(config["env_prefix"])
        self.group_file = self.lab_dir / config["group_file"]
        self.desired_file = (
            self.lab_dir / config["desired_file"] if config.get("desired_file") else None
        )
        self.metrics_targets = (
            self.lab_dir / config["metrics_targets"] if config.get("metrics_targets") else None
        )
        self.group_metrics = (
            self.lab_dir / config["group_metrics"] if config.get("group_metrics") else None
        )
        self.instances: list[Instance] = []
        self.terminating: list[Instance] = []
        self.cursor = 0
        self.stopping = False
        self.last_sync = 0.0
        self.env = self._env(config.get("env_file"))
        self.policy = ScalingPolicy.from_dict(config["scaling"]) if config.get("scaling") else None
        self.scaler = Autoscaler(self.policy, self.desired) if self.policy else None
        self.scaling_file = self.lab_dir / SCALING_FILE
        backlog = config.get("backlog_scaling")
        self.backlog_scaler = BacklogScaler(BacklogPolicy.from_dict(backlog)) if backlog else None
        self.backlog = BacklogReader(Path(backlog["queue_env_file"])) if backlog else None
        if backlog:
            self.scaling_file = self.lab_dir / backlog["scaling_file"]
        self.requested = self.desired  # the operator's desired capacity (desired_file)
        self.in_service = -1
        self.lost = 0  # instances found dead or failing /healthz, and replaced

    # ----------------------------------------------------------------- environment

    def _env(self, env_file: str | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }
        if env_file:
            for line in Path(env_file).read_text().splitlines():
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
        if self.metrics_targets is not None and self.metrics_targets.parent.is_dir():
            # The lab has a monitoring tier: Prometheus discovers the group from this.
            if self.group_metrics is not None:
                self.publish_metrics(self.group_metrics)
            write_json_atomic(
                self.metrics_targets,
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

    def publish_metrics(self, path: Path) -> None:
        """The group's figures in Prometheus's text format, renamed into place (the
        textfile collector reads only ``*.prom``)."""
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

    def read_desired(self) -> None:
        """The desired capacity an operator set in ``desired_file`` (UpdateAutoScalingGroup);
        0 until it exists."""
        if self.desired_file is None:
            return
        try:
            wanted = int(self.desired_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            wanted = 0
        wanted = max(0, min(wanted, self.slots))
        if wanted != self.requested:
            log.info("%s: desired capacity %d -> %d (set)", self.name, self.requested, wanted)
            self.requested = wanted
        if self.backlog_scaler is None:
            self.desired = wanted

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
        port = self.slot_port + slot
        inst_id = f"{self.name}-{slot}"
        env = {
            **self.env,
            f"{self.env_prefix}HOST": "127.0.0.1",
            f"{self.env_prefix}PORT": str(port),
            f"{self.env_prefix}AZ": az,
            f"{self.env_prefix}INSTANCE_ID": inst_id,
        }
        cpu_group = None
        if self.policy is not None:  # the instance type: a CPU quota
            cpu_group = self.cpu_cgroup / inst_id
            procmod.make_cpu_group(cpu_group, self.policy.cpu_quota, self.policy.max_size)
        popen = procmod.spawn(
            list(self.config["command"]),
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

    def check(self, inst: Instance, status: int) -> None:
        """Judge one instance by its process and by ``status``, its ``/healthz`` answer
        of this tick (0: no answer)."""
        if inst.popen is not None:
            inst.popen.poll()
        if not procmod.alive(inst.pid):
            self.terminate(inst, "process exited")
            return
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
        if self.policy is None or self.scaler is None:
            return
        stats = self._haproxy(f"show stat {self.backend} 6 -1")
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
            server = by_server.get(f"{self.prefix}{inst.slot}", {})
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
            self.follow(decision, "%.1f/s per target, target %.1f/s")
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

    def backlog_autoscale(self) -> None:
        """One tick of the worker policy: the operator's desired capacity, raised while
        the backlog per worker is above the target."""
        if self.backlog_scaler is None or self.backlog is None:
            return
        decision = self.backlog_scaler.size(
            time.time(), self.backlog.latest(), self.requested, self.desired
        )
        if decision is not None:
            self.follow(decision, "%.0f waiting per worker, target %.0f")

    def follow(self, decision: Decision, figures: str) -> None:
        """Log ``decision`` (``figures`` formats its metric and target), follow it and
        record it in the group's timeline."""
        log.info(
            "%s scaling: desired %d -> %d (%s: " + figures + ")",
            self.name,
            decision.previous,
            decision.desired,
            decision.reason,
            decision.metric,
            decision.target,
        )
        self.desired = decision.desired
        self.record(decision.as_dict())

    # ----------------------------------------------------------------- HAProxy

    def _haproxy(self, command: str) -> str:
        try:
            return haproxy_command(self.socket, command)
        except OSError as exc:
            log.warning("haproxy socket: %s: %s", command, exc)
            return ""

    def haproxy_enable(self, inst: Instance) -> None:
        server = f"{self.backend}/{self.prefix}{inst.slot}"
        self._haproxy(f"set server {server} addr 127.0.0.1 port {inst.port}")
        self._haproxy(f"set server {server} state ready")

    def haproxy_disable(self, slot: int) -> None:
        self._haproxy(f"set server {self.backend}/{self.prefix}{slot} state maint")

    def haproxy_sync(self) -> None:
        """Re-apply the group to HAProxy (it forgets run-time changes when restarted)."""
        answer = self._haproxy(f"show servers state {self.backend}")
        wanted = {i.slot: i for i in self.instances}
        for line in answer.splitlines():
            fields = line.split()
            if len(fields) < 19 or fields[0].startswith("#"):
                continue
            suffix = fields[3].removeprefix(self.prefix)
            if suffix == fields[3] or not suffix.isdigit():
                continue
            slot = int(suffix)
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

    def state(self) -> tuple[Any, ...]:
        instances = [i.record() for i in self.instances]
        return (instances, len(self.terminating), self.desired, self.lost)

    def tick(self, health: dict[int, int]) -> None:
        """One turn: judge the instances by ``health`` (``/healthz`` status by PID, probed
        for every group at once), follow the desired capacity, keep HAProxy in step."""
        before = self.state()
        for inst in list(self.instances):
            self.check(inst, health.get(inst.pid, 0))
        self.reap()
        self.read_desired()
        self.autoscale()
        self.backlog_autoscale()
        while len(self.instances) < self.desired and self.launch() is not None:
            pass
        while len(self.instances) > self.desired:
            self.scale_in()
        if time.monotonic() - self.last_sync > 2.0:
            self.haproxy_sync()
            self.last_sync = time.monotonic()
        if self.state() != before:
            self.publish()

    def start(self) -> None:
        if self.backlog is not None:
            self.backlog.start()
        self.adopt()
        self.read_desired()
        self.haproxy_sync()
        self.publish()

    def shutdown_signal(self) -> list[Instance]:
        """Out of HAProxy and SIGTERM to every instance; the ones to wait for."""
        self.stopping = True
        everyone = self.instances + self.terminating
        for inst in everyone:
            self.haproxy_disable(inst.slot)
            if procmod.alive(inst.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(inst.pid, signal.SIGTERM)
        return everyone

    def shutdown_finish(self, everyone: list[Instance]) -> None:
        for inst in everyone:
            if procmod.alive(inst.pid):
                os.kill(inst.pid, signal.SIGKILL)
            procmod.remove_group(self.cpu_cgroup / inst.id)
        self.instances, self.terminating = [], []
        self.publish()


class Supervisor:
    """Every group of the lab (``supervisor.json``'s ``groups``), one tick each per turn."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.groups = [Group(config, group) for group in config["groups"]]
        self.stopping = False

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        everyone = [(group, group.shutdown_signal()) for group in self.groups]
        instances = [inst for _, insts in everyone for inst in insts]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(procmod.alive(i.pid) for i in instances):
            for inst in instances:
                if inst.popen is not None:
                    inst.popen.poll()
            time.sleep(0.05)
        for group, insts in everyone:
            group.shutdown_finish(insts)

    def probe(self, pool: ThreadPoolExecutor) -> dict[int, int]:
        """``/healthz`` of every instance at once: a frozen AZ's instances each take the
        probe's whole timeout, and one after another they would stall the turn."""
        instances = [i for group in self.groups for i in group.instances]
        return dict(zip((i.pid for i in instances), pool.map(healthz, instances), strict=True))

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for group in self.groups:
            group.start()
        with ThreadPoolExecutor(max_workers=PROBE_THREADS) as pool:
            while not self.stopping:
                health = self.probe(pool)
                for group in self.groups:
                    group.tick(health)
                time.sleep(TICK_S)
        self.shutdown()


class BacklogReader(threading.Thread):
    """The queue's depth, read from the broker every ``BACKLOG_EVERY_S`` in the
    background (a passive declare): a frozen broker node must not stall the supervisor's
    turn, which replaces the instances of that AZ meanwhile. The broker and the queue
    are the workers' own (their settings, from their environment file)."""

    def __init__(self, env_file: Path) -> None:
        super().__init__(name="backlog", daemon=True)
        self.env_file = env_file
        self.depth: int | None = None
        self.read_at = 0.0

    def latest(self) -> int | None:
        """The last depth read, or None when the broker has not answered lately."""
        fresh = time.monotonic() - self.read_at < BACKLOG_STALE_S
        return self.depth if fresh else None

    def run(self) -> None:
        import pika
        import pika.exceptions

        connection: pika.BlockingConnection | None = None
        while True:
            try:
                if connection is None or connection.is_closed:
                    connection, channel, queue = self._connect()
                frame = channel.queue_declare(queue, passive=True)
                self.depth, self.read_at = int(frame.method.message_count), time.monotonic()
            except (pika.exceptions.AMQPError, OSError, PeakreadyError) as exc:
                log.debug("backlog: %s", exc)  # not there yet, or a node lost: next second
                if connection is not None and connection.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                        connection.close()
                connection = None
            time.sleep(BACKLOG_EVERY_S)

    def _connect(self) -> tuple[Any, Any, str]:
        import pika

        from peakready.backoffice.settings import load_settings

        settings = load_settings(self.env_file)
        password = settings.queue_password.get_secret_value() if settings.queue_password else ""
        urls = pipeline.parse_urls(settings.queue_url, "QUEUE_URL")
        connection = pika.BlockingConnection(pipeline.connection_parameters(urls, password))
        return connection, connection.channel(), settings.queue_name


def healthz(inst: Instance) -> int:
    status, _ = http_get(f"http://127.0.0.1:{inst.port}/healthz", timeout=PROBE_TIMEOUT_S)
    return status


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
