"""What counts as a settled lab before a failover run (fake observations, no lab)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from peakready.bench.failover import _unsettled


def member(name: str, role: str, state: str) -> dict[str, Any]:
    return {"name": name, "role": role, "state": state}


SETTLED_DB = {
    "leader": "pg-a",
    "sync_standby": ["pg-b"],
    "members": [
        member("pg-a", "leader", "running"),
        member("pg-b", "sync_standby", "streaming"),
        member("pg-c", "replica", "streaming"),
    ],
}
VIEW = {"master": "127.0.0.1:1", "num_slaves": 1, "num_other_sentinels": 2, "flags": "master"}


def lab(**overrides: Any) -> tuple[Any, Any]:
    data = {
        "cluster": SETTLED_DB,
        "sentinels": {"agreed": True, "sentinels": {"s-a": VIEW, "s-b": VIEW}},
        "instances": [{"ready": True}] * 3,
    } | overrides
    state = SimpleNamespace(
        endpoints={"db_members": [{}] * 3, "redis": [{}] * 2},
        app_group=lambda: {"desired": 3},
    )
    observe = SimpleNamespace(
        patroni_cluster=lambda s: data["cluster"],
        # The leader's view of its replicas (GET /patroni), faked from the members' states.
        streaming_replicas=lambda s, leader: {
            m["name"] for m in data["cluster"]["members"] if m["state"] == "streaming"
        },
        sentinel_master=lambda s: data["sentinels"],
        app_instances=lambda s: data["instances"],
    )
    return state, observe


def test_a_full_strength_lab_is_settled() -> None:
    assert _unsettled(*lab()) == ""


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        (
            {
                "cluster": SETTLED_DB
                | {"members": [*SETTLED_DB["members"][:2], member("pg-c", "replica", "starting")]}
            },
            "PostgreSQL: 1/2 replicas streaming",
        ),
        ({"cluster": SETTLED_DB | {"sync_standby": []}}, "PostgreSQL: no synchronous standby"),
        ({"cluster": SETTLED_DB | {"leader": None}}, "PostgreSQL: no leader"),
        (
            {"sentinels": {"agreed": True, "sentinels": {"s-a": VIEW | {"num_slaves": 0}}}},
            "Redis Sentinels: not agreed on a master with all its replicas",
        ),
        (
            {"instances": [{"ready": True}, {"ready": False}, {"ready": True}]},
            "storefront: fewer ready instances than desired",
        ),
    ],
)
def test_what_is_not_settled_is_named(overrides: dict[str, Any], what: str) -> None:
    assert _unsettled(*lab(**overrides)) == what
