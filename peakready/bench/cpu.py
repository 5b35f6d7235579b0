"""CPU time the lab's processes spend, per kind, across a load step (from ``/proc``).

The lab's AZ processes live in freezer cgroups (``cgroup.procs`` lists each process
once, with all its threads counted in its ``/proc/<pid>/stat``); HAProxy and the
supervisor are regional and come from ``state.json``. Divided by the operations of a
step, this says where an order's CPU goes — the storefront, PostgreSQL, HAProxy or the
load generator itself — which is what a tuning decision on a 2-core machine needs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from peakready.lab.state import LabState

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
KINDS = (
    "storefront",
    "backoffice",
    "postgresql",
    "haproxy",
    "patroni",
    "etcd",
    "redis",
    "search",
    "rabbitmq",
    "monitoring",
    "other",
)
#: The Erlang VM and its helpers, which RabbitMQ runs as.
ERLANG = ("beam.smp", "epmd", "erl_child_setup", "inet_gethost", "rabbitmq-server")


def kind_of(cmdline: str) -> str:
    """The kind of a lab process from its command line."""
    words = cmdline.split()
    first = Path(words[0]).name if words else ""
    if "peakready.app" in cmdline:
        return "storefront"
    if "peakready.backoffice" in cmdline:
        return "backoffice"
    if first in ERLANG or "rabbitmq-server" in cmdline:
        return "rabbitmq"
    if first == "postgres" or cmdline.startswith("postgres:"):
        return "postgresql"
    # Prometheus, Alertmanager and the exporters (before redis: prometheus-redis-exporter)
    if first.startswith("prometheus") or "peakready.monitoring" in cmdline:
        return "monitoring"
    for kind, marker in (
        ("haproxy", "haproxy"),
        ("patroni", "patroni"),
        ("etcd", "etcd"),
        ("redis", "redis-"),
        ("search", "searchd"),
    ):
        if marker in first or (kind == "patroni" and marker in cmdline):
            return kind
    return "other"


def snapshot(state: LabState) -> dict[str, float]:
    """CPU seconds used so far per kind by the lab's live processes, plus this process."""
    totals = dict.fromkeys(KINDS, 0.0)
    for pid in lab_pids(state):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime + stime, plus cutime + cstime: children already reaped (a PostgreSQL
        # backend that served a connection and exited lands in the postmaster's).
        ticks = sum(int(f) for f in fields[11:15])
        totals[kind_of(cmdline.strip())] += ticks * TICK_S
    totals["bench client"] = time.process_time()
    return totals


def per_operation(before: dict[str, float], after: dict[str, float], ops: int) -> dict[str, float]:
    """CPU milliseconds per operation, per kind, between two snapshots (kinds that used none
    are left out). Processes started or ended in between count only their share seen."""
    if ops <= 0:
        return {}
    out = {}
    for kind, used in after.items():
        delta = max(used - before.get(kind, 0.0), 0.0)
        if delta > 0:
            out[kind] = round(delta * 1000 / ops, 3)
    return out


# private


def lab_pids(state: LabState) -> set[int]:
    pids = {int(p["pid"]) for p in state.processes if p.get("pid")}
    cgroup = state.data.get("cgroup")
    if cgroup:
        for procs in Path(cgroup).glob("*/cgroup.procs"):
            try:
                pids.update(int(line) for line in procs.read_text().split())
            except OSError:
                continue
    pids.update(int(i["pid"]) for i in state.app_group().get("instances", []) if i.get("pid"))
    return pids
