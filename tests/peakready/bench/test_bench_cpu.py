"""Where an operation's CPU goes: process kinds and per-operation shares."""

from __future__ import annotations

import pytest

from peakready.bench.cpu import kind_of, per_operation


@pytest.mark.parametrize(
    ("cmdline", "kind"),
    [
        ("/work/main/.venv/bin/python3 -m peakready.app", "storefront"),
        ("/usr/lib/postgresql/15/bin/postgres -D /x/pg/a", "postgresql"),
        ("postgres: peakready-dev: shop shop 127.0.0.1(42744) idle", "postgresql"),
        ("/usr/sbin/haproxy -f /x/haproxy.cfg", "haproxy"),
        ("/work/main/.venv/bin/python3 /work/main/.venv/bin/patroni /x/a.yml", "patroni"),
        ("/usr/bin/etcd --name=etcd-a", "etcd"),
        ("/usr/bin/redis-sentinel 127.0.0.1:28060 [sentinel]", "redis"),
        ("/usr/bin/searchd --config /x/a.conf --nodetach", "search"),
        ("/usr/bin/python3 -m peakready.backoffice --env-file /x/b.env", "backoffice"),
        ("/usr/lib/erlang/erts-13.1.5/bin/beam.smp -W w -- -root /usr/lib/erlang", "rabbitmq"),
        ("/bin/sh /usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq"),
        ("/usr/bin/epmd -port 20013 -address 127.0.0.1", "rabbitmq"),
        ("/usr/bin/prometheus --config.file=/x/prometheus.yml", "monitoring"),
        ("/usr/bin/prometheus-alertmanager --config.file=/x/alertmanager.yml", "monitoring"),
        ("/usr/bin/prometheus-redis-exporter --redis.addr=redis://127.0.0.1:28040", "monitoring"),
        ("/usr/bin/prometheus-postgres-exporter --web.listen-address=127.0.0.1:1", "monitoring"),
        ("/work/main/.venv/bin/python3 -m peakready.monitoring.probe /x/p.json", "monitoring"),
        ("/usr/bin/python3 -m peakready.lab.supervisor /x/supervisor.json", "other"),
    ],
)
def test_kinds_of_lab_processes(cmdline: str, kind: str) -> None:
    assert kind_of(cmdline) == kind


def test_cpu_per_operation_leaves_out_idle_kinds() -> None:
    before = {"storefront": 10.0, "postgresql": 5.0, "etcd": 1.0}
    after = {"storefront": 12.0, "postgresql": 5.5, "etcd": 1.0}
    assert per_operation(before, after, 500) == {"storefront": 4.0, "postgresql": 1.0}


def test_no_operations_no_shares() -> None:
    assert per_operation({"storefront": 0.0}, {"storefront": 1.0}, 0) == {}
