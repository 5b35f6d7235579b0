"""The app tier: storefront instances spread over the AZs, kept at the desired size by
the supervisor (``peakready.lab.supervisor``), which stands for the Auto Scaling group.

The supervisor is regional (in no AZ's cgroup); it starts once the shop's database
exists and the storefront environment is rendered. Its instances are not in
``state.json``: they come and go, and ``<lab>/app_group.json`` lists them.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from peakready.lab import observe
from peakready.lab.autoscaler import SCALING_FILE, lab_policy
from peakready.lab.components.backoffice import worker_groups
from peakready.lab.components.base import Component, ProcessSpec, Row, Targets, UpContext, Wave
from peakready.lab.components.queue import amqp_url
from peakready.lab.components.search import DIST_INDEX
from peakready.lab.state import (
    APP_GROUP_METRICS,
    APP_METRICS_TARGETS,
    APP_SLOTS,
    cpu_cgroup_of,
)
from peakready.planner import requests_per_instance
from peakready.topology import pinned_now

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState


#: The storefront's shedding budget in the lab (requests in progress; HAProxy's maxconn
#: per instance is 4, ``targets.lab.LAB_MAXCONN``).
LAB_SHED_SEARCH_AT = 3
LAB_SHED_READS_AT = 4


class AppGroup(Component):
    kind = "supervisor"
    after = ("patroni", "redis", "searchd", "haproxy")
    role = "storefront"
    regional = True
    secret_keys = ("audit_token",)

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        config = plan.lab / "supervisor.json"
        return [
            ProcessSpec(
                "supervisor",
                self.kind,
                None,
                [sys.executable, "-m", "peakready.lab.supervisor", str(config)],
                port=plan.ports.app(0),
                file=env_file(plan),
                extra={"config": str(config)},
            )
        ]

    def can_start(self, ctx: UpContext, spec: ProcessSpec) -> bool:
        return bool(ctx.facts.get("database"))

    def ports(self, plan: Plan) -> dict[int, str]:
        return {plan.ports.app(slot): f"storefront slot {slot}" for slot in range(APP_SLOTS)}

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        return [(plan.lab / "storefront", "root", 0o700)]

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        return {"app_group": plan.app_group}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        p, n = plan.ports, len(plan.azs)
        protect = plan.topology.lab.overload_protection
        search = ",".join(f"127.0.0.1:{p.search_sql(i)}" for i in range(n))
        return {
            "storefront_manage_directories": False,
            "storefront_mode": "lab",
            "storefront_env_path": str(env_file(plan)),
            "storefront_db_dsn": plan.dsn("read-write"),
            "storefront_db_read_dsn": plan.dsn("prefer-standby"),
            "storefront_db_password": secrets["db_app_password"],
            "storefront_redis_sentinels": ",".join(f"127.0.0.1:{p.sentinel(i)}" for i in range(n)),
            "storefront_redis_master": plan.sentinel_master,
            "storefront_redis_password": secrets["redis_password"],
            "storefront_redis_sentinel_password": secrets["sentinel_password"],
            "storefront_search_backend": "sphinx",
            "storefront_search_hosts": search,
            "storefront_search_index": DIST_INDEX,
            "storefront_audit_token": secrets["audit_token"],
            "storefront_migrate": True,
            "storefront_seed_products": plan.topology.lab.products,
            "storefront_initial_stock": plan.topology.lab.initial_stock,
            # HAProxy lets 4 requests in at once (maxconn): past 3 search is shed so
            # that orders keep the instance's CPU; uncached reads only past 4, so here
            # HAProxy's queue sheds them before the storefront does.
            "storefront_shed_search_at": LAB_SHED_SEARCH_AT if protect else 0,
            "storefront_shed_reads_at": LAB_SHED_READS_AT if protect else 0,
            **queue_vars(plan, secrets),
        }

    def progress_rows(self) -> list[str]:
        return ["app instances"]

    def step(self, ctx: UpContext) -> list[Row]:
        ready = ctx.facts.get("database") and env_file(ctx.plan).exists()
        if ready and not ctx.started("supervisor"):
            write_supervisor_config(ctx.plan)  # read by the supervisor super().step starts
        super().step(ctx)
        running = bool(ctx.state.by_kind(self.kind))
        instances = observe.app_instances(ctx.state) if running else []
        ready = [i for i in instances if i["ready"]]
        if ready:
            ctx.facts["app_seeded"] = True  # the first ready instance ran the migrations
        desired = ctx.state.app_group().get("desired") or ctx.plan.topology.lab.app_instances
        return [
            Row("app instances", len(ready) == desired, f"{len(ready)}/{desired} ready (/readyz)")
        ]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        apps = observe.app_instances(state)
        desired = state.app_group().get("desired", 0)
        ready = sum(1 for a in apps if a["ready"])
        return [
            Row(
                "app group (supervisor)",
                desired > 0 and ready == desired == len(apps),
                f"{ready}/{desired} instances ready: "
                + ", ".join(f"{a['id']}@{a['az']}" for a in apps),
            )
        ]

    def stop_targets(self, state: LabState, wave: Wave) -> Targets:
        if wave != Wave.SERVERS:
            return []
        # The supervisor stops relaunching as soon as it gets SIGTERM; its instances
        # shut down in parallel with it.
        group = state.app_group()
        instances = group.get("instances", []) + group.get("terminating", [])
        return super().stop_targets(state, wave) + [(int(i["pid"]), None) for i in instances]


def queue_vars(plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
    """Where the relay publishes (the stack's queue tier), or nothing."""
    if plan.topology.queue is None:
        return {}
    return {
        "storefront_queue_url": amqp_url(plan.ports, len(plan.azs)),
        "storefront_queue_name": plan.topology.queue.queue_name,
        "storefront_queue_password": secrets["rabbitmq_password"],
    }


def env_file(plan: Plan) -> Path:
    return plan.lab / "storefront" / "storefront.env"


def write_supervisor_config(plan: Plan) -> None:
    """The supervisor's ``supervisor.json``: the app group, and the back office's workers
    when the stack has a queue tier. A previous group's ``app_group.json`` and scaling
    timeline go."""
    per_instance, _ = requests_per_instance(plan.topology)
    policy = lab_policy(plan.topology, per_instance, pinned_now() or datetime.now(UTC))
    app = {
        "name": "app",
        "group": plan.app_group,
        "desired": plan.topology.lab.app_instances,
        "scaling": policy.as_dict(),
        "slots": APP_SLOTS,
        "slot_port": plan.ports.app(0),
        "haproxy_backend": "storefront",
        "server_prefix": "app",
        "command": [sys.executable, "-m", "peakready.app"],
        "env_file": str(env_file(plan)),
        "env_prefix": "PEAKREADY_APP_",
        "group_file": "app_group.json",
        "metrics_targets": APP_METRICS_TARGETS,
        "group_metrics": APP_GROUP_METRICS,
    }
    config = {
        "stack": plan.stack,
        "lab_dir": str(plan.lab),
        "azs": plan.azs,
        "cgroup": str(plan.cgroup),
        "cpu_cgroup": str(cpu_cgroup_of(plan.cgroup)),
        "haproxy_socket": str(plan.lab / "haproxy.sock"),
        "groups": [app, *worker_groups(plan)],
    }
    (plan.lab / "supervisor.json").write_text(json.dumps(config, indent=2))
    (plan.lab / "app_group.json").unlink(missing_ok=True)
    (plan.lab / SCALING_FILE).unlink(missing_ok=True)
