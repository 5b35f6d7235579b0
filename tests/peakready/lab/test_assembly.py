"""The lab assembled from its components: found by themselves, started in dependency order."""

from __future__ import annotations

import pytest

from peakready.lab import assembly
from peakready.lab.components.base import Component


def test_every_component_module_is_found() -> None:
    kinds = {c.kind for c in assembly.COMPONENTS}
    assert kinds == {
        "etcd",
        "patroni",
        "redis",
        "sentinel",
        "searchd",
        "pgbackrest",
        "haproxy",
        "supervisor",
        "monitoring",
        "rabbitmq",
        "backoffice",
    }


def test_each_component_starts_after_what_it_needs() -> None:
    order = [c.kind for c in assembly.COMPONENTS]
    for component in assembly.COMPONENTS:
        for needed in component.after:
            assert order.index(needed) < order.index(component.kind), component.kind


def _kind(name: str, after: tuple[str, ...] = ()) -> Component:
    cls = type(name, (Component,), {"kind": name, "after": after})
    return cls()


def test_a_dependency_on_an_unknown_component_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"lab component queue: needs unknown \['broker'\]"):
        assembly.in_dependency_order({"queue": _kind("queue", ("broker",))})


def test_components_waiting_on_each_other_are_refused() -> None:
    found = {"a": _kind("a", ("b",)), "b": _kind("b", ("a",))}
    with pytest.raises(RuntimeError, match=r"in a circle: \['a', 'b'\]"):
        assembly.in_dependency_order(found)


def test_ties_are_broken_by_kind_so_the_order_is_stable() -> None:
    found = {k: _kind(k) for k in ("c", "a", "b")}
    assert [c.kind for c in assembly.in_dependency_order(found)] == ["a", "b", "c"]


def test_the_playbook_renders_each_role_where_its_component_lives() -> None:
    from peakready.lab.plan import make_plan
    from peakready.topology import Topology

    plan = make_plan(Topology.load("dev"))
    plan.binaries = dict.fromkeys(assembly.packages(), "/usr/bin/true")
    variables = assembly.ansible_vars(plan, dict.fromkeys(assembly.secret_keys(), "x"))
    assert sorted(variables["lab_regional_roles"]) == [
        "backoffice",
        "haproxy",
        "pgbackrest",
        "prometheus",
        "storefront",
    ]
    assert sorted(variables["lab_az_roles"]) == ["patroni", "rabbitmq", "sentinel", "sphinx"]
