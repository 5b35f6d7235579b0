"""etcd: one member per AZ, Patroni's store (DCS). It needs no rendered file."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, ClassVar

from peakready.errors import PeakreadyError
from peakready.lab import observe
from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext, Wave

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState


class Etcd(Component):
    kind = "etcd"
    binaries: ClassVar[dict[str, str]] = {"etcd": "Debian package etcd-server"}
    secret_keys = ("etcd_root_password", "etcd_patroni_password")
    wave = Wave.STORE

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        p = plan.ports
        cluster = ",".join(
            f"etcd-{az}=http://127.0.0.1:{p.etcd_peer(i)}" for i, az in enumerate(plan.azs)
        )
        specs = []
        for i, az in enumerate(plan.azs):
            data = plan.lab / "etcd" / az
            client, peer = p.etcd_client(i), p.etcd_peer(i)
            cmd = [
                plan.binaries["etcd"],
                f"--name=etcd-{az}",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster={cluster}",
                "--initial-cluster-state=new",
                f"--initial-cluster-token=peakready-{plan.stack}-{p.base}",
                "--heartbeat-interval=100",
                "--election-timeout=1000",
                "--quota-backend-bytes=268435456",
                "--logger=zap",
                "--log-level=warn",
            ]
            specs.append(
                ProcessSpec(
                    f"etcd-{az}",
                    self.kind,
                    az,
                    cmd,
                    port=client,
                    extra={"peer_port": peer, "data_dir": str(data)},
                )
            )
        return specs

    def ports(self, plan: Plan) -> dict[int, str]:
        named = {}
        for i in range(len(plan.azs)):
            named[plan.ports.etcd_client(i)] = f"etcd client, AZ {i}"
            named[plan.ports.etcd_peer(i)] = f"etcd peer, AZ {i}"
        return named

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        return [(plan.lab / "etcd", "root", 0o755)]

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {"etcd": [f"http://127.0.0.1:{plan.ports.etcd_client(i)}" for i in plan.az_range]}

    def progress_rows(self) -> list[str]:
        return ["etcd"]

    def step(self, ctx: UpContext) -> list[Row]:
        super().step(ctx)
        if ctx.facts.get("etcd"):
            return [Row("etcd", True, "healthy")]
        health = observe.etcd_health(ctx.state)
        healthy = bool(health) and all(health.values())
        if healthy:
            clear_stale_dcs(ctx.plan)
            enable_auth(ctx.plan.ports.etcd_client(0), ctx.secrets)
            ctx.facts["etcd"] = True
            return [Row("etcd", True, "healthy, authentication on")]
        return [Row("etcd", False, f"{sum(health.values())}/{len(health)} healthy")]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        etcd = observe.etcd_health(state)
        return [
            Row(
                "etcd cluster",
                all(etcd.values()),
                f"{sum(etcd.values())}/{len(etcd)} members healthy",
            )
        ]


def enable_auth(port: int, secrets: dict[str, str]) -> None:
    """etcd v3 authentication: ``root``, and ``patroni`` with read-write on Patroni's keys
    only; then nobody reads or writes the leader key without a password. Idempotent:
    a cluster whose root password already works is left as it is."""
    url = f"http://127.0.0.1:{port}/v3"
    root = secrets["etcd_root_password"]
    if _post(url + "/auth/authenticate", {"name": "root", "password": root}).get("token"):
        return  # already on (a lab started again on its own data)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("/auth/role/add", {"name": "root"}),
        ("/auth/user/add", {"name": "root", "password": root}),
        ("/auth/user/grant", {"user": "root", "role": "root"}),
        ("/auth/role/add", {"name": "patroni"}),
        (
            "/auth/role/grant",
            {
                "name": "patroni",
                "perm": {"permType": "READWRITE", **_prefix_range(b"/service/")},
            },
        ),
        ("/auth/user/add", {"name": "patroni", "password": secrets["etcd_patroni_password"]}),
        ("/auth/user/grant", {"user": "patroni", "role": "patroni"}),
        ("/auth/enable", {}),
    ]
    for path, body in steps:
        _call(url, path, body, tolerate="already exists")


def _call(url: str, path: str, body: dict[str, Any], tolerate: str | None = None) -> dict[str, Any]:
    """POST one gRPC-gateway call and return its JSON answer; an error answer raises
    ``PeakreadyError``, unless it contains ``tolerate``."""
    answer = _post(url + path, body)
    error = answer.get("error")
    if error is not None and (tolerate is None or tolerate not in str(error)):
        raise PeakreadyError(f"etcd {path}: {error}")
    return answer


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` as JSON; the JSON answer, error answers included, as a dict."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        try:
            return dict(json.loads(exc.read() or b"{}")) or {"error": str(exc)}
        except ValueError:
            return {"error": str(exc)}


def _prefix_range(prefix: bytes) -> dict[str, str]:
    """The etcd v3 key range of every key that starts with ``prefix`` (base64, as the
    gateway wants it)."""
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    return {"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode()}


def clear_stale_dcs(plan: Plan) -> None:
    """A fresh bootstrap must not adopt a previous cluster's keys (LAB-NOTES)."""
    if any((plan.pg_data(i) / "PG_VERSION").exists() for i in plan.az_range):
        return
    url = f"http://127.0.0.1:{plan.ports.etcd_client(0)}/v3"
    _call(url, "/kv/deleterange", _prefix_range(f"/service/{plan.scope}/".encode()))
