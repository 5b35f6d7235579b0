"""Search: one Sphinx ``searchd`` per AZ behind a mirrored distributed index.

Once the storefront has seeded the catalogue, ``up`` feeds it from the database into
every node's RT index (the same ``feed_sphinx`` the app and the backup drill use).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

from peakready.lab import observe
from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState

RT_INDEX, DIST_INDEX = "products_rt", "products"


class Search(Component):
    kind = "searchd"
    role = "sphinx"
    binaries: ClassVar[dict[str, str]] = {"searchd": "Debian package sphinxsearch"}

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        specs = []
        for i, az in enumerate(plan.azs):
            config = plan.lab / "sphinx" / f"{az}.conf"
            specs.append(
                ProcessSpec(
                    f"searchd-{az}",
                    self.kind,
                    az,
                    # --nodetach keeps the real PID (LAB-NOTES).
                    [plan.binaries["searchd"], "--config", str(config), "--nodetach"],
                    port=plan.ports.search_sql(i),
                    file=config,
                    extra={
                        "api_port": plan.ports.search_api(i),
                        "data_dir": str(plan.lab / "sphinx" / az),
                    },
                )
            )
        return specs

    def ports(self, plan: Plan) -> dict[int, str]:
        named = {}
        for i in plan.az_range:
            named[plan.ports.search_sql(i)] = f"searchd SphinxQL, AZ {i}"
            named[plan.ports.search_api(i)] = f"searchd API, AZ {i}"
        return named

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        return [(plan.lab / "sphinx", "root", 0o755)] + [
            (plan.lab / "sphinx" / az, "root", 0o755) for az in plan.azs
        ]

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {
            "search": [
                {"host": "127.0.0.1", "port": plan.ports.search_sql(i), "az": plan.azs[i]}
                for i in plan.az_range
            ],
            "search_index": DIST_INDEX,
            "search_rt_index": RT_INDEX,
        }

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        return {"search_domain": f"search-{plan.stack}"}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        return {
            "sphinx_manage_directories": False,
            "sphinx_mirror_ports": [plan.ports.search_api(i) for i in plan.az_range],
            "sphinx_rt_index": RT_INDEX,
            "sphinx_dist_index": DIST_INDEX,
        }

    def host_vars(self, plan: Plan, i: int) -> dict[str, Any]:
        az = plan.azs[i]
        return {
            "sphinx_node": {
                "name": f"searchd-{az}",
                "az": az,
                "sql_port": plan.ports.search_sql(i),
                "api_port": plan.ports.search_api(i),
                "config_path": str(plan.lab / "sphinx" / f"{az}.conf"),
                "data_dir": str(plan.lab / "sphinx" / az),
                "log_dir": str(plan.lab / "logs"),
            }
        }

    def progress_rows(self) -> list[str]:
        return ["searchd", "search index fed"]

    def step(self, ctx: UpContext) -> list[Row]:
        super().step(ctx)
        n = len(ctx.plan.azs)
        if ctx.facts.get("app_seeded"):
            ctx.launch("feed", lambda: feed(ctx.plan, ctx.state, ctx.secrets["db_app_password"]))
        fed = ctx.job_result("feed") if ctx.job_done("feed") else None
        answers = answers_per_node(ctx.state, timeout=0.5)
        answering = sum(1 for a in answers if a is not None)
        complete = fed is not None and all(a is not None and a >= min(fed, 1) for a in answers)
        return [
            Row("searchd", answering == n, f"{answering}/{n} answering"),
            Row(
                "search index fed",
                complete,
                f"{fed} products on every node" if complete else "after the app seeds",
            ),
        ]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        answers = answers_per_node(state)
        return [
            Row(
                "search (searchd)",
                bool(answers) and all(a is not None and a > 0 for a in answers),
                ", ".join(
                    f"node {i}: {a if a is not None else 'no answer'}"
                    for i, a in enumerate(answers)
                ),
            )
        ]


def answers_per_node(state: LabState, timeout: float = observe.TIMEOUT_S) -> list[int | None]:
    """Documents each node's distributed index finds (None: no answer), probed at once."""
    nodes = state.endpoints.get("search", [])
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return list(
            pool.map(
                lambda node: observe.search_answers(
                    node["host"], node["port"], DIST_INDEX, timeout
                ),
                nodes,
            )
        )


def feed(plan: Plan, state: LabState, password: str) -> int:
    """Copy the catalogue from the database into every searchd's RT index."""
    # Imported here: psycopg and pymysql only while the lab starts.
    import psycopg

    # Imported here: pymysql only while the lab starts.
    from peakready.app.search import feed_sphinx

    hosts = [(node["host"], node["port"]) for node in state.endpoints["search"]]
    with psycopg.connect(plan.dsn("any"), password=password) as conn:
        return int(feed_sphinx(hosts, RT_INDEX, conn))
