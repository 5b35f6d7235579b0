"""The order queue's broker: a RabbitMQ node per AZ, one cluster (Amazon MQ's
``CLUSTER_MULTI_AZ`` in miniature), only when the stack has a ``queue`` tier.

The nodes find each other by classic peer discovery (every node lists all three) and
start one after another (LAB-NOTES: about 6 s each). The lab runs its own ``epmd`` on
its own port, and binds the AMQP listeners, the distribution ports and the CLI's ports
to 127.0.0.1 inside the lab's block. The orders flow through a quorum queue, which the
back-office workers declare (``peakready.pipeline``). The user and password are
generated; the Erlang cookie is a lab secret in each node's ``HOME``.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from peakready.errors import PeakreadyError
from peakready.lab import proc as procmod
from peakready.lab.components.base import Component, ProcessSpec, Row, Targets, UpContext, Wave
from peakready.lab.state import Ports

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState

QUEUE_USER = "peakready"
EPMD = "epmd"


class Broker(Component):
    kind = "rabbitmq"
    role = "rabbitmq"
    binaries: ClassVar[dict[str, str]] = {
        "rabbitmq-server": "Debian package rabbitmq-server",
        "rabbitmqctl": "Debian package rabbitmq-server",
        "epmd": "Debian package erlang-base (with rabbitmq-server)",
    }
    secret_keys = ("rabbitmq_password", "rabbitmq_cookie")

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        if plan.topology.queue is None:
            return []
        p = plan.ports
        specs = [
            ProcessSpec(
                EPMD,
                self.kind,
                None,
                [plan.binaries["epmd"], "-port", str(p.epmd), "-address", "127.0.0.1"],
                port=p.epmd,
                cwd=folder(plan),
            )
        ]
        for i, az in enumerate(plan.azs):
            specs.append(
                ProcessSpec(
                    f"rabbitmq-{az}",
                    self.kind,
                    az,
                    [plan.binaries["rabbitmq-server"]],
                    port=p.amqp(i),
                    file=node_dir(plan.lab, az) / "rabbitmq.conf",
                    cwd=node_dir(plan.lab, az),
                    extra={
                        "node": node_name(az),
                        "data_dir": str(node_dir(plan.lab, az)),
                        "ctl": plan.binaries["rabbitmqctl"],
                    },
                    env=node_env(plan.lab, p, az, i),
                )
            )
        return specs

    def can_start(self, ctx: UpContext, spec: ProcessSpec) -> bool:
        p = ctx.plan.ports
        if spec.name == EPMD:
            return True
        if not procmod.port_in_use(p.epmd):
            return False
        if all((node_dir(ctx.plan.lab, az) / "mnesia").exists() for az in ctx.plan.azs):
            # A cluster started again on its data: all at once, since each node waits
            # (up to 5 min) for the one that stopped last before it accepts clients.
            return True
        i = ctx.plan.azs.index(spec.az or "")
        # A new cluster one node after another: each joins what the ones before formed.
        return i == 0 or procmod.port_in_use(p.amqp(i - 1))

    def ports(self, plan: Plan) -> dict[int, str]:
        if plan.topology.queue is None:
            return {}
        p = plan.ports
        found = {p.epmd: "the broker's epmd"}
        for i in plan.az_range:
            found[p.amqp(i)] = f"RabbitMQ AMQP, AZ {i}"
            found[p.amqp_dist(i)] = f"RabbitMQ distribution, AZ {i}"
        for port in p.amqp_cli:
            found[port] = "rabbitmqctl distribution"
        return found

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        if plan.topology.queue is None:
            return []
        found = [(folder(plan), "root", 0o755)]
        for az in plan.azs:
            found += [(node_dir(plan.lab, az), "root", 0o700)]
            found += [(node_dir(plan.lab, az) / sub, "root", 0o700) for sub in ("home", "log")]
        return found

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        if plan.topology.queue is None:
            return {}
        return {
            "rabbitmq": [
                {"host": "127.0.0.1", "port": plan.ports.amqp(i), "az": az, "node": node_name(az)}
                for i, az in enumerate(plan.azs)
            ],
            "rabbitmq_queue": plan.topology.queue.queue_name,
        }

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        if plan.topology.queue is None:
            return {}
        return {"queue_broker": cluster_name(plan)}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        if plan.topology.queue is None:
            return {}
        return {
            "rabbitmq_user": QUEUE_USER,
            "rabbitmq_password": secrets["rabbitmq_password"],
            "rabbitmq_cookie": secrets["rabbitmq_cookie"],
            "rabbitmq_cluster_nodes": [node_name(az) for az in plan.azs],
            "rabbitmq_cluster_name": cluster_name(plan),
        }

    def host_vars(self, plan: Plan, i: int) -> dict[str, Any]:
        if plan.topology.queue is None:
            return {"rabbitmq_node": {}}
        az = plan.azs[i]
        return {
            "rabbitmq_node": {
                "name": node_name(az),
                "port": plan.ports.amqp(i),
                "dir": str(node_dir(plan.lab, az)),
            }
        }

    def progress_rows(self) -> list[str]:
        return ["RabbitMQ cluster"]

    def step(self, ctx: UpContext) -> list[Row]:
        plan = ctx.plan
        if plan.topology.queue is None:
            ctx.facts["queue"] = True
            return [Row("RabbitMQ cluster", True, "no queue tier in this stack")]
        super().step(ctx)
        n = len(plan.azs)
        listening = sum(1 for i in plan.az_range if procmod.port_in_use(plan.ports.amqp(i)))
        if listening < n:
            return [Row("RabbitMQ cluster", False, f"{listening}/{n} nodes accept AMQP")]
        ctx.launch("rabbitmq-cluster", Cluster.of_plan(plan).wait_clustered)
        if not ctx.job_done("rabbitmq-cluster"):
            return [Row("RabbitMQ cluster", False, f"{n} nodes up, clustering")]
        ctx.facts["queue"] = True
        return [Row("RabbitMQ cluster", True, f"{n} nodes clustered")]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        nodes = state.by_kind(self.kind)
        members = [e for e in nodes if e["name"] != EPMD]
        if not members:
            return []
        # Over AMQP, not rabbitmqctl: each call of the CLI boots an Erlang VM (about
        # 0.45 s of CPU), and health is polled every 0.5 s while a drill restores.
        queue = str(state.endpoints.get("rabbitmq_queue", "orders"))
        password = state.secrets()["rabbitmq_password"]
        return [
            Row(f"{e['name']} (AMQP {e['port']})", *serves_queue(int(e["port"]), password, queue))
            for e in members
        ]

    def stop_targets(self, state: LabState, wave: Wave) -> Targets:
        # The nodes with the other servers; their epmd once they are gone.
        entries = state.by_kind(self.kind)
        if wave == Wave.SERVERS:
            return [(int(e["pid"]), e.get("data_dir")) for e in entries if e["name"] != EPMD]
        if wave == Wave.CHILDREN:
            return [(int(e["pid"]), None) for e in entries if e["name"] == EPMD]
        return []


def cluster_name(plan: Plan) -> str:
    """The cluster's name: the ``queue_broker`` output (DESIGN §3)."""
    return f"peakready-{plan.stack}"


def folder(plan: Plan) -> Path:
    return plan.lab / "rabbitmq"


def node_dir(lab: Path, az: str) -> Path:
    return lab / "rabbitmq" / az


def node_name(az: str) -> str:
    return f"rabbit-{az}@localhost"


def amqp_url(ports: Ports, n: int) -> str:
    """``QUEUE_URL`` of the lab: every node, the password apart (``peakready.pipeline``)."""
    return ",".join(f"amqp://{QUEUE_USER}@127.0.0.1:{ports.amqp(i)}/%2F" for i in range(n))


def node_env(lab: Path, ports: Ports, az: str, i: int) -> dict[str, str]:
    """The environment of node ``i`` (and of ``rabbitmqctl`` talking to it): its files,
    ports and the lab's epmd, everything on 127.0.0.1 (LAB-NOTES, RabbitMQ)."""
    d = node_dir(lab, az)
    return {
        **cli_env(lab, ports, az),
        "RABBITMQ_NODENAME": node_name(az),
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(ports.amqp(i)),
        "RABBITMQ_DIST_PORT": str(ports.amqp_dist(i)),
        "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
        "RABBITMQ_LOG_BASE": str(d / "log"),
        "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
        # The distribution listener binds 0.0.0.0 unless told (LAB-NOTES).
        "RABBITMQ_SERVER_START_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        # One scheduler of each kind per node: three nodes share 2 cores (measured:
        # 82.6 instead of 88.1 MiB PSS a node; busy-waiting is off by default in 3.10).
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1 +SDcpu 1:1 +SDio 1 +A 1",
    }


def cli_env(lab: Path, ports: Ports, az: str) -> dict[str, str]:
    return {
        "HOME": str(node_dir(lab, az) / "home"),  # its .erlang.cookie
        "ERL_EPMD_PORT": str(ports.epmd),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_CTL_DIST_PORT_MIN": str(ports.amqp_cli.start),
        "RABBITMQ_CTL_DIST_PORT_MAX": str(ports.amqp_cli.stop - 1),
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
    }


@dataclass(frozen=True)
class Cluster:
    """The lab's RabbitMQ nodes as ``rabbitmqctl`` reaches them (the stack's own
    ``rabbitmqctl`` when ``lab.binaries`` overrides it)."""

    ctl: str
    lab: Path
    ports: Ports
    azs: list[str]

    @classmethod
    def of_plan(cls, plan: Plan) -> Cluster:
        return cls(plan.binaries["rabbitmqctl"], plan.lab, plan.ports, plan.azs)

    @classmethod
    def of_state(cls, state: LabState) -> Cluster:
        nodes = [e for e in state.by_kind(Broker.kind) if e.get("ctl")]
        if not nodes:
            raise PeakreadyError(f"lab {state.lab_dir}: no RabbitMQ node recorded")
        return cls(str(nodes[0]["ctl"]), state.lab_dir, Ports(state.port_base), state.azs)

    def run(self, az: str, *args: str, timeout_s: float = 10.0) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <node of az> <args>`` (bounded)."""
        return subprocess.run(
            [self.ctl, "-n", node_name(az), *args],
            env=cli_env(self.lab, self.ports, az),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def running_nodes(self, az: str) -> list[str]:
        """The running nodes as the node of ``az`` sees them ([] when it is down)."""
        status = self._json(az, "cluster_status")
        return list(status.get("running_nodes", [])) if isinstance(status, dict) else []

    def wait_clustered(self, timeout_s: float = 60.0) -> None:
        """Until every node runs in one cluster; PeakreadyError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while len(running := self.running_nodes(self.azs[0])) < len(self.azs):
            if time.monotonic() > deadline:
                raise PeakreadyError(
                    f"RabbitMQ: {len(running)}/{len(self.azs)} nodes clustered after "
                    f"{timeout_s:.0f}s (logs in {self.lab / 'logs'})"
                )
            time.sleep(0.5)

    def leader(self, queue: str) -> str | None:
        """The node leading quorum queue ``queue`` (asked of the first node that answers)."""
        for az in self.azs:
            rows = self._json(az, "list_queues", "name", "leader")
            if isinstance(rows, list):
                return next((str(r.get("leader")) for r in rows if r.get("name") == queue), None)
        return None

    def _json(self, az: str, *args: str) -> Any:
        """A JSON answer of ``rabbitmqctl``, or None when the node does not give one."""
        try:
            done = self.run(az, *args, "--formatter", "json", timeout_s=5)
            return json.loads(done.stdout) if done.returncode == 0 else None
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            return None


def serves_queue(port: int, password: str, queue: str, timeout_s: float = 1.0) -> tuple[bool, str]:
    """Whether the node on ``port`` logs the lab's user in and serves ``queue`` (a node
    out of the cluster would not know it; a frozen one does not answer in time)."""
    try:
        depth = queue_depth(port, password, queue, timeout_s)
    except PeakreadyError as exc:
        return False, str(exc)
    return True, f"serves queue {queue} ({depth} waiting)"


def queue_depth(port: int, password: str, queue: str, timeout_s: float = 1.0) -> int:
    """The messages waiting in ``queue``, as the node on ``port`` reports them;
    PeakreadyError saying what failed."""
    import pika
    import pika.exceptions

    params = pika.ConnectionParameters(
        "127.0.0.1",
        port,
        credentials=pika.PlainCredentials(QUEUE_USER, password),
        connection_attempts=1,
        socket_timeout=timeout_s,
        blocked_connection_timeout=timeout_s,
        stack_timeout=timeout_s * 2,
    )
    try:
        connection = pika.BlockingConnection(params)
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise PeakreadyError(f"no AMQP session: {type(exc).__name__}") from None
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.AMQPError as exc:
        raise PeakreadyError(f"queue {queue}: {type(exc).__name__}") from None
    finally:
        if connection.is_open:
            connection.close()
