"""etcd: one member per AZ, Patroni's store (DCS). It needs no rendered file."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import TYPE_CHECKING, Any, ClassVar

from peakready.lab import observe
from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext, Wave

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState


class Etcd(Component):
    kind = "etcd"
    binaries: ClassVar[dict[str, str]] = {"etcd": "Debian package etcd-server"}
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
            ctx.facts["etcd"] = True
            return [Row("etcd", True, "healthy")]
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


def clear_stale_dcs(plan: Plan) -> None:
    """A fresh bootstrap must not adopt a previous cluster's keys (LAB-NOTES)."""
    if any((plan.pg_data(i) / "PG_VERSION").exists() for i in plan.az_range):
        return
    prefix = f"/service/{plan.scope}/".encode()
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    body = json.dumps(
        {"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode()}
    ).encode()
    url = f"http://127.0.0.1:{plan.ports.etcd_client(0)}/v3/kv/deleterange"
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=3):
        pass
