"""The cache's data nodes: a Redis primary in the first AZ, a replica in each other AZ.

Their files are rendered by the ``sentinel`` role with the Sentinels' (one template
pair per AZ); :mod:`peakready.lab.components.sentinel` starts the Sentinels once every
replica is in sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan


class Cache(Component):
    kind = "redis"
    binaries: ClassVar[dict[str, str]] = {"redis-server": "Debian package redis-server"}
    secret_keys = ("redis_password",)

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        specs = []
        for i, az in enumerate(plan.azs):
            data = plan.lab / "redis" / az
            config = plan.lab / "redis" / f"{az}.conf"
            specs.append(
                ProcessSpec(
                    f"redis-{az}",
                    self.kind,
                    az,
                    [plan.binaries["redis-server"], str(config)],
                    port=plan.ports.redis(i),
                    file=config,
                    cwd=data,
                    extra={"data_dir": str(data)},
                )
            )
        return specs

    def ports(self, plan: Plan) -> dict[int, str]:
        return {plan.ports.redis(i): f"Redis, AZ {i}" for i in plan.az_range}

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        return [(plan.lab / "redis", "root", 0o755)] + [
            (plan.lab / "redis" / az, "root", 0o700) for az in plan.azs
        ]

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {
            "redis": [
                {"host": "127.0.0.1", "port": plan.ports.redis(i), "az": plan.azs[i]}
                for i in plan.az_range
            ]
        }

    def host_vars(self, plan: Plan, i: int) -> dict[str, Any]:
        az = plan.azs[i]
        return {
            "sentinel_redis_node": {
                "name": f"redis-{az}",
                "az": az,
                "port": plan.ports.redis(i),
                "config_path": str(plan.lab / "redis" / f"{az}.conf"),
                "dir": str(plan.lab / "redis" / az),
            }
        }

    def progress_rows(self) -> list[str]:
        return ["Redis replication"]

    def step(self, ctx: UpContext) -> list[Row]:
        super().step(ctx)
        n = len(ctx.plan.azs)
        replicas = in_sync_replicas(ctx.plan.ports.redis(0), ctx.secrets["redis_password"])
        if replicas >= n - 1:
            ctx.facts["redis_replicated"] = True
            return [Row("Redis replication", True, f"primary + {replicas} replicas")]
        return [Row("Redis replication", False, f"{replicas}/{n - 1} replicas in sync")]


def in_sync_replicas(port: int, password: str) -> int:
    """How many replicas the primary on ``port`` reports ``online`` (0 when it is down)."""
    # Imported here: redis-py only while the lab starts (status and down never need it).
    import redis

    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
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
        if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )
