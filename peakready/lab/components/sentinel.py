"""Redis Sentinel: one per AZ, master name ``peakready-<stack>``, quorum 2.

Sentinels learn replicas by polling the primary every 10 s (LAB-NOTES): they start only
once every replica is in sync, and the cache counts as ready only when every Sentinel
sees every replica and every other Sentinel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from peakready.lab import observe
from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState


class Sentinel(Component):
    kind = "sentinel"
    after = ("redis",)
    role = "sentinel"
    binaries: ClassVar[dict[str, str]] = {"redis-sentinel": "Debian package redis-sentinel"}
    secret_keys = ("sentinel_password",)

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        specs = []
        for i, az in enumerate(plan.azs):
            folder = plan.lab / "sentinel" / az
            specs.append(
                ProcessSpec(
                    f"sentinel-{az}",
                    self.kind,
                    az,
                    [plan.binaries["redis-sentinel"], str(folder / "sentinel.conf")],
                    port=plan.ports.sentinel(i),
                    file=folder / "sentinel.conf",
                    cwd=folder,
                    extra={"data_dir": str(folder)},
                )
            )
        return specs

    def can_start(self, ctx: UpContext, spec: ProcessSpec) -> bool:
        return bool(ctx.facts.get("redis_replicated"))

    def ports(self, plan: Plan) -> dict[int, str]:
        return {plan.ports.sentinel(i): f"Sentinel, AZ {i}" for i in plan.az_range}

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        return [(plan.lab / "sentinel", "root", 0o755)] + [
            (plan.lab / "sentinel" / az, "root", 0o700) for az in plan.azs
        ]

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {
            "sentinels": [
                {"host": "127.0.0.1", "port": plan.ports.sentinel(i), "az": plan.azs[i]}
                for i in plan.az_range
            ],
            "sentinel_master": plan.sentinel_master,
        }

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        return {"cache_group": plan.sentinel_master}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        return {
            "sentinel_manage_directories": False,
            "sentinel_primary_port": plan.ports.redis(0),
            "sentinel_master_name": plan.sentinel_master,
            "sentinel_redis_password": secrets["redis_password"],
            "sentinel_password": secrets["sentinel_password"],
        }

    def host_vars(self, plan: Plan, i: int) -> dict[str, Any]:
        az = plan.azs[i]
        return {
            "sentinel_node": {
                "name": f"sentinel-{az}",
                "az": az,
                "port": plan.ports.sentinel(i),
                "config_path": str(plan.lab / "sentinel" / az / "sentinel.conf"),
                "dir": str(plan.lab / "sentinel" / az),
            }
        }

    def progress_rows(self) -> list[str]:
        return ["Sentinels"]

    def step(self, ctx: UpContext) -> list[Row]:
        super().step(ctx)
        if not ctx.state.by_kind(self.kind):
            return [Row("Sentinels", False, "")]
        n = len(ctx.plan.azs)
        view = observe.sentinel_master(ctx.state)
        return [Row("Sentinels", sentinels_converged(view, n), sentinel_detail(view, n))]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        n = len(state.azs)
        view = observe.sentinel_master(state)
        roles = observe.redis_roles(state)
        healthy = (
            sentinels_converged(view, n)
            and list(roles.values()).count("master") == 1
            and None not in roles.values()
        )
        detail = f"master {view['master']}; " + sentinel_detail(view, n)
        return [Row("cache (Redis + Sentinel)", healthy, detail)]


def sentinels_converged(view: dict[str, Any], n: int) -> bool:
    """Every Sentinel answers, sees ``n - 1`` replicas and peers, and all agree."""
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
