"""The load balancer: one regional HAProxy (in no AZ), the stack's ``endpoint``.

It fronts the app group (a ``server-template`` of slots the supervisor fills) and the
database (a write port checked on Patroni's ``/primary``, a read port on ``/replica``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from peakready.lab import observe
from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext
from peakready.lab.state import APP_SLOTS, BACKOFFICE_SLOTS

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState


class LoadBalancer(Component):
    kind = "haproxy"
    role = "haproxy"
    regional = True
    binaries: ClassVar[dict[str, str]] = {"haproxy": "Debian package haproxy"}
    secret_keys = ("haproxy_stats_password",)

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        p, config = plan.ports, plan.lab / "haproxy" / "haproxy.cfg"
        return [
            ProcessSpec(
                "haproxy",
                self.kind,
                None,
                [plan.binaries["haproxy"], "-db", "-f", str(config)],
                port=p.http,
                file=config,
                extra={
                    "db_write_port": p.db_write,
                    "db_read_port": p.db_read,
                    "stats_port": p.stats,
                    "socket": str(socket(plan)),
                },
            )
        ]

    def ports(self, plan: Plan) -> dict[int, str]:
        p = plan.ports
        return {
            p.http: "HAProxy HTTP entry",
            p.db_write: "HAProxy PostgreSQL write port",
            p.db_read: "HAProxy PostgreSQL read port",
            p.stats: "HAProxy stats",
        }

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        return [(plan.lab / "haproxy", "root", 0o755)]

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {
            "http": f"http://127.0.0.1:{plan.ports.http}",
            "haproxy_socket": str(socket(plan)),
            "haproxy_stats": f"http://127.0.0.1:{plan.ports.stats}/",
        }

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        return {"endpoint": f"http://127.0.0.1:{plan.ports.http}"}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        p = plan.ports
        return {
            "haproxy_binary": plan.binaries["haproxy"],
            "haproxy_config_path": str(plan.lab / "haproxy" / "haproxy.cfg"),
            "haproxy_http_port": p.http,
            "haproxy_db_write_port": p.db_write,
            "haproxy_db_read_port": p.db_read,
            "haproxy_stats_port": p.stats,
            "haproxy_stats_password": secrets["haproxy_stats_password"],
            "haproxy_socket_path": str(socket(plan)),
            "haproxy_app_slots": APP_SLOTS,
            "haproxy_overload_protection": plan.topology.lab.overload_protection,
            "haproxy_app_placeholder_port": p.app(0),
            "haproxy_db_members": [
                {"name": plan.member(i), "port": p.postgres(i), "rest_port": p.patroni(i)}
                for i in plan.az_range
            ],
            "haproxy_backoffice_port": p.backoffice_http,
            # The supervisor's back-office group fills these slots (0 without a queue).
            "haproxy_backoffice_slots": BACKOFFICE_SLOTS if plan.topology.queue else 0,
            "haproxy_backoffice_placeholder_port": p.backoffice(0),
        }

    def progress_rows(self) -> list[str]:
        return ["HAProxy backends"]

    def step(self, ctx: UpContext) -> list[Row]:
        super().step(ctx)
        servers = observe.haproxy_servers(ctx.state)
        ok, detail = haproxy_ready(servers, len(ctx.plan.azs), ctx.plan.topology.lab.app_instances)
        return [Row("HAProxy backends", ok, detail)]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        servers = observe.haproxy_servers(state)
        desired = state.app_group().get("desired", 0)
        ok, detail = haproxy_ready(servers, len(state.azs), desired)
        status, _ = observe.http_get(f"{state.outputs.get('endpoint')}/readyz")
        return [
            Row("load balancer (HAProxy)", ok, detail),
            Row("endpoint /readyz", status == 200, f"HTTP {status or 'no answer'}"),
        ]


def socket(plan: Plan) -> Path:
    return plan.lab / "haproxy.sock"


def haproxy_ready(servers: dict[str, str], n: int, desired: int) -> tuple[bool, str]:
    """One write server UP, ``n - 1`` read servers UP, ``desired`` app servers all UP."""
    if not servers:
        return False, "admin socket not answering"
    write_up = [s for s, st in servers.items() if s.startswith("postgres_write/") and st == "UP"]
    read_up = [s for s, st in servers.items() if s.startswith("postgres_read/") and st == "UP"]
    app = {s: st for s, st in servers.items() if s.startswith("storefront/")}
    app_up = [s for s, st in app.items() if st == "UP"]
    ok = len(write_up) == 1 and len(read_up) == n - 1 and len(app_up) == len(app) == desired
    detail = f"write {len(write_up)}/1, read {len(read_up)}/{n - 1}, app {len(app_up)}/{desired} UP"
    return ok, detail
