"""Monitoring: one regional Prometheus and Alertmanager, and the exporters they scrape.

Prometheus scrapes every storefront instance (file-based discovery from the supervisor's
app group: a scaled-out instance is scraped without a restart), HAProxy's own exporter,
Patroni's ``/metrics``, PostgreSQL (one ``postgres_exporter`` per member), Redis (one
``redis_exporter``, multi-target), each ``searchd`` and broker node (``blackbox_exporter``
TCP probes),
the synthetic checkout probe (:mod:`peakready.monitoring.probe`) and the host
(``node_exporter``, with the supervisor's group figures). Its rules are
:func:`peakready.monitoring.alerts.prometheus_rules` of the stack, the same catalogue
``infra/alarms.py`` renders as CloudWatch alarms. Prometheus and Alertmanager demand
basic credentials (bcrypt in their web configuration); the drills read Alertmanager's
API (:mod:`peakready.monitoring.detection`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from peakready.lab import observe
from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext
from peakready.lab.components.database import on_primary
from peakready.lab.state import APP_METRICS_TARGETS, BACKOFFICE_METRICS_TARGETS
from peakready.monitoring.alerts import prometheus_rules

if TYPE_CHECKING:
    from peakready.monitoring.detection import Fetch

if TYPE_CHECKING:
    from pathlib import Path

    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState

MONITOR_USER = "peakready"
DB_MONITOR_USER = "monitor"
#: Scrape and rule evaluation interval: an alert ``for: 0s`` fires within about two of
#: them after its signal changes (LAB-NOTES, "Monitoring").
SCRAPE_INTERVAL_S = 2
#: How far back a query looks for a series' last sample (Prometheus: 5 min). A target
#: that vanishes gets staleness markers, but Prometheus writes none when it stops: after
#: a restart, series of targets that were replaced meanwhile (the supervisor's groups
#: name their instances) stay current for the whole lookback, and an alert on absence,
#: such as QueueAge's "no worker consumes", stays silent. Five scrape intervals.
LOOKBACK_S = 5 * SCRAPE_INTERVAL_S
#: The Go runtime of Prometheus, Alertmanager and the exporters: one P each (the lab has 2
#: cores: fewer per-P caches and GC workers) and a collection at 50 % heap growth instead
#: of 100 %. Measured: the tier's PSS after ``up`` 171 MiB instead of 183.5.
GO_RUNTIME = {"GOMAXPROCS": "1", "GOGC": "50"}


def port(plan: Plan, what: str, i: int = 0) -> int:
    """Ports 90-99 of the lab's block: ``postgres`` is one exporter per member (``i``)."""
    offsets = {"prometheus": 90, "alertmanager": 91, "blackbox": 92, "redis": 93, "node": 94}
    offsets["haproxy"] = 95
    offsets["postgres"] = 96 + i
    offsets["probe"] = 99
    return plan.ports.base + offsets[what]


class Monitoring(Component):
    kind = "monitoring"
    after = ("patroni", "redis", "haproxy")
    role = "prometheus"
    regional = True
    binaries: ClassVar[dict[str, str]] = {
        "prometheus": "Debian package prometheus",
        "prometheus-alertmanager": "Debian package prometheus-alertmanager",
        "prometheus-postgres-exporter": "Debian package prometheus-postgres-exporter",
        "prometheus-redis-exporter": "Debian package prometheus-redis-exporter",
        "prometheus-node-exporter": "Debian package prometheus-node-exporter",
        "prometheus-blackbox-exporter": "Debian package prometheus-blackbox-exporter",
    }
    secret_keys = ("monitoring_password", "db_monitor_password")

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        d, b = folder(plan), plan.binaries

        def listen(what: str, i: int = 0) -> str:
            return f"--web.listen-address=127.0.0.1:{port(plan, what, i)}"

        specs = [
            ProcessSpec(
                "prometheus",
                self.kind,
                None,
                [
                    b["prometheus"],
                    f"--config.file={d / 'prometheus.yml'}",
                    f"--web.config.file={d / 'web.yml'}",
                    f"--storage.tsdb.path={d / 'tsdb'}",
                    "--storage.tsdb.retention.time=2d",
                    f"--query.lookback-delta={LOOKBACK_S}s",
                    listen("prometheus"),
                ],
                port=port(plan, "prometheus"),
                file=d / "prometheus.yml",
            ),
            ProcessSpec(
                "alertmanager",
                self.kind,
                None,
                [
                    b["prometheus-alertmanager"],
                    f"--config.file={d / 'alertmanager.yml'}",
                    f"--web.config.file={d / 'web.yml'}",
                    f"--storage.path={d / 'alertmanager'}",
                    "--cluster.listen-address=",  # one Alertmanager: no gossip port
                    listen("alertmanager"),
                ],
                port=port(plan, "alertmanager"),
                file=d / "alertmanager.yml",
            ),
            ProcessSpec(
                "redis-exporter",
                self.kind,
                None,
                [
                    b["prometheus-redis-exporter"],
                    f"--redis.password-file={d / 'redis-exporter.json'}",
                    "--redis.addr=",  # multi-target only: Prometheus names each node
                    f"--web.listen-address=127.0.0.1:{port(plan, 'redis')}",
                ],
                port=port(plan, "redis"),
                file=d / "redis-exporter.json",
            ),
            ProcessSpec(
                "node-exporter",
                self.kind,
                None,
                [
                    b["prometheus-node-exporter"],
                    "--collector.disable-defaults",
                    "--collector.cpu",
                    "--collector.filesystem",
                    "--collector.meminfo",
                    "--collector.loadavg",
                    "--collector.textfile",  # the supervisor's group figures
                    f"--collector.textfile.directory={d / 'textfile'}",
                    listen("node"),
                ],
                port=port(plan, "node"),
            ),
            ProcessSpec(
                "blackbox-exporter",
                self.kind,
                None,
                [
                    b["prometheus-blackbox-exporter"],
                    f"--config.file={d / 'blackbox.yml'}",
                    listen("blackbox"),
                ],
                port=port(plan, "blackbox"),
                file=d / "blackbox.yml",
            ),
            ProcessSpec(
                "checkout-probe",
                self.kind,
                None,
                [
                    sys.executable,
                    "-m",
                    "peakready.monitoring.probe",
                    f"--endpoint=http://127.0.0.1:{plan.ports.http}",
                    f"--token-file={d / 'checkout-probe.token'}",
                    f"--listen=127.0.0.1:{port(plan, 'probe')}",
                ],
                port=port(plan, "probe"),
                file=d / "checkout-probe.token",
                env={"PYTHONUNBUFFERED": "1"},
            ),
        ] + [
            # One per member, on its AZ's host (0.11 cannot scrape several servers at once:
            # its collectors report duplicates), frozen with it.
            ProcessSpec(
                f"postgres-exporter-{az}",
                self.kind,
                az,
                [
                    b["prometheus-postgres-exporter"],
                    f"--extend.query-path={d / 'postgres-queries.yml'}",
                    "--disable-settings-metrics",  # ~300 pg_settings series per member
                    listen("postgres", i),
                ],
                port=port(plan, "postgres", i),
                file=d / "postgres-queries.yml",  # rendered after its pgpass
                env={
                    "DATA_SOURCE_NAME": f"postgresql://{DB_MONITOR_USER}@127.0.0.1:"
                    f"{plan.ports.postgres(i)}/postgres?sslmode=disable",
                    "PGPASSFILE": str(d / "postgres-exporter.pgpass"),
                },
            )
            for i, az in enumerate(plan.azs)
        ]
        return [
            s if s.name == "checkout-probe" else replace(s, env=GO_RUNTIME | s.env) for s in specs
        ]

    def can_start(self, ctx: UpContext, spec: ProcessSpec) -> bool:
        # The exporter's role exists once the shop's database does (see step); the probe
        # starts once the storefront migrated (its synthetic product exists), as a
        # canary is deployed after the service it watches.
        if spec.name == "checkout-probe":
            return bool(ctx.facts.get("app_seeded"))
        return not spec.name.startswith("postgres-exporter") or ctx.job_done("db-monitor")

    def ports(self, plan: Plan) -> dict[int, str]:
        names = {
            port(plan, "prometheus"): "Prometheus",
            port(plan, "alertmanager"): "Alertmanager",
            port(plan, "redis"): "redis_exporter",
            port(plan, "node"): "node_exporter",
            port(plan, "blackbox"): "blackbox_exporter",
            port(plan, "haproxy"): "HAProxy Prometheus exporter",
            port(plan, "probe"): "synthetic checkout probe",
        }
        for i in plan.az_range:
            names[port(plan, "postgres", i)] = f"postgres_exporter, AZ {i}"
        return names

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        d = folder(plan)
        return [
            (d, "root", 0o700),
            (d / "tsdb", "root", 0o700),
            (d / "alertmanager", "root", 0o700),
            (d / "rules.d", "root", 0o700),  # your own rules (SIGHUP Prometheus to read)
            (d / "textfile", "root", 0o700),  # the supervisor's group figures
        ]

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        return {
            "prometheus": f"http://127.0.0.1:{port(plan, 'prometheus')}",
            "alertmanager": f"http://127.0.0.1:{port(plan, 'alertmanager')}",
            "monitoring_user": MONITOR_USER,
        }

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        # Imported here: bcrypt only while the lab renders its files.
        import bcrypt

        password = secrets["monitoring_password"]
        p, d = plan.ports, folder(plan)
        return {
            "prometheus_dir": str(d),
            "prometheus_user": MONITOR_USER,
            "prometheus_password": password,
            "prometheus_password_hash": bcrypt.hashpw(
                password.encode(), bcrypt.gensalt(10)
            ).decode(),
            "prometheus_interval_s": SCRAPE_INTERVAL_S,
            "prometheus_stack": plan.stack,
            "prometheus_rules": yaml.safe_dump(prometheus_rules(plan.topology), sort_keys=False),
            "prometheus_self": f"127.0.0.1:{port(plan, 'prometheus')}",
            "prometheus_alertmanager": f"127.0.0.1:{port(plan, 'alertmanager')}",
            "prometheus_app_targets": str(plan.lab / APP_METRICS_TARGETS),
            "prometheus_haproxy_target": f"127.0.0.1:{port(plan, 'haproxy')}",
            "prometheus_patroni_targets": [f"127.0.0.1:{p.patroni(i)}" for i in plan.az_range],
            "prometheus_postgres_exporters": [
                f"127.0.0.1:{port(plan, 'postgres', i)}" for i in plan.az_range
            ],
            "prometheus_redis_exporter": f"127.0.0.1:{port(plan, 'redis')}",
            "prometheus_redis_targets": [f"redis://127.0.0.1:{p.redis(i)}" for i in plan.az_range],
            "prometheus_redis_password": secrets["redis_password"],
            "prometheus_node_exporter": f"127.0.0.1:{port(plan, 'node')}",
            "prometheus_blackbox_exporter": f"127.0.0.1:{port(plan, 'blackbox')}",
            "prometheus_checkout_probe": f"127.0.0.1:{port(plan, 'probe')}",
            "prometheus_audit_token": secrets["audit_token"],
            # The blackbox exporter's TCP probes: each searchd, and each broker node's
            # AMQP port when there is a queue tier (a node lost, QueueNodeLost).
            "prometheus_tcp_probes": {
                "search": [f"127.0.0.1:{p.search_sql(i)}" for i in plan.az_range],
                **(
                    {"queue": [f"127.0.0.1:{p.amqp(i)}" for i in plan.az_range]}
                    if plan.topology.queue is not None
                    else {}
                ),
            },
            "prometheus_db_monitor_password": secrets["db_monitor_password"],
            # The back-office group, discovered from the supervisor's file like the app's.
            "prometheus_backoffice_targets": str(plan.lab / BACKOFFICE_METRICS_TARGETS)
            if plan.topology.queue is not None
            else "",
            # HAProxy serves its exporter on its own port, behind the same credentials.
            "haproxy_metrics_port": port(plan, "haproxy"),
            "haproxy_metrics_user": MONITOR_USER,
            "haproxy_metrics_password": password,
        }

    def progress_rows(self) -> list[str]:
        return ["Prometheus targets", "Alertmanager"]

    def step(self, ctx: UpContext) -> list[Row]:
        if ctx.facts.get("database"):
            ports = [m["port"] for m in ctx.state.endpoints["db_members"]]
            password = ctx.secrets["db_monitor_password"]
            superuser = ctx.secrets["db_superuser_password"]
            ctx.launch("db-monitor", lambda: create_monitor_role(ports, superuser, password))
        super().step(ctx)
        auth = (MONITOR_USER, ctx.secrets["monitoring_password"])
        up, total = targets_up(ctx.state, auth)
        # Patroni, PostgreSQL, Redis, searchd (and a broker node) per AZ; HAProxy, node,
        # Alertmanager, itself
        per_az = 5 if ctx.plan.topology.queue is not None else 4
        fixed = len(ctx.plan.azs) * per_az + 4
        status, _ = observe.http_get(f"{ctx.state.endpoints['alertmanager']}/-/ready", auth=auth)
        return [
            Row(
                "Prometheus targets",
                total >= fixed and up == total,
                f"{up}/{total} up",
            ),
            Row("Alertmanager", status == 200, f"HTTP {status or 'no answer'}"),
        ]

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        auth = credentials(state)
        up, total = targets_up(state, auth)
        prometheus, alertmanager = state.endpoints["prometheus"], state.endpoints["alertmanager"]
        status, _ = observe.http_get(f"{alertmanager}/-/ready", auth=auth)
        # Healthy when Prometheus scrapes: one scrape that timed out on a busy machine
        # (or an exporter in a frozen AZ, which the tier's own rows report) is shown, not
        # judged here.
        return [
            Row(
                "monitoring (Prometheus)",
                total > 0 and up > 0,
                f"{up}/{total} targets up, {prometheus}",
            ),
            Row(
                "alerting (Alertmanager)",
                status == 200,
                f"HTTP {status or 'no answer'}, {alertmanager}",
            ),
        ]


def folder(plan: Plan) -> Path:
    return plan.lab / "monitoring"


def credentials(state: LabState) -> tuple[str, str]:
    """Prometheus's and Alertmanager's basic credentials, from the lab's secrets."""
    return MONITOR_USER, state.secrets()["monitoring_password"]


def alertmanager_fetch(state: LabState) -> Fetch:
    """What the drill's alert watcher polls: the lab Alertmanager's active alerts."""
    url, auth = state.endpoints["alertmanager"], credentials(state)

    def fetch() -> list[dict[str, Any]] | None:
        status, body = observe.http_get(f"{url}/api/v2/alerts?active=true", 2.0, auth)
        return list(json.loads(body)) if status == 200 else None

    return fetch


def targets_up(state: LabState, auth: tuple[str, str]) -> tuple[int, int]:
    """``(up, total)`` of Prometheus's active scrape targets (0, 0 when it is not answering),
    the storefront's instances left out: they come and go with the group, whose own row
    judges them (an instance just launched is not listening yet)."""
    status, body = observe.http_get(
        f"{state.endpoints['prometheus']}/api/v1/targets?state=active", auth=auth
    )
    if status != 200:
        return 0, 0
    active = [
        t
        for t in json.loads(body)["data"]["activeTargets"]
        if t["labels"].get("job") != "storefront"
    ]
    return sum(1 for t in active if t["health"] == "up"), len(active)


def create_monitor_role(ports: list[int], superuser: str, password: str) -> None:
    """The exporters' login: ``pg_monitor`` only (reads statistics, changes nothing)."""

    def work(conn: Any, sql: Any) -> None:
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_MONITOR_USER,)
        ).fetchone()
        verb = "ALTER" if exists else "CREATE"
        role = sql.Identifier(DB_MONITOR_USER)
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password))
        )
        conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(role))

    on_primary(ports, superuser, work)


def unsettled_alerts(state: LabState) -> list[str] | None:
    """Page alerts Prometheus holds pending or firing now (None: it did not answer)."""
    url = f"{state.endpoints['prometheus']}/api/v1/alerts"
    status, body = observe.http_get(url, 2.0, credentials(state))
    if status != 200:
        return None
    alerts = json.loads(body).get("data", {}).get("alerts", [])
    return sorted(
        {
            str(a["labels"].get("alertname"))
            for a in alerts
            if a.get("labels", {}).get("severity") != "ticket"
        }
    )
