"""The lab assembled from its components (docs/internals.md, "Lab components").

:data:`COMPONENTS` is the order ``up`` starts them in and ``status`` reports them in,
and the base of the order ``down`` stops them in (by wave). The functions below are
what ``up`` needs of all of them at once: binaries, secrets, ports, folders, files,
endpoints, outputs and the Ansible variables and inventory. A new tier is one new
module in ``peakready/lab/components/`` (found here by itself) and one Ansible role.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

import peakready.lab.components as package
from peakready.lab.components.base import Component
from peakready.lab.plan import Plan


def discover() -> dict[str, Component]:
    """One instance of every component class defined in ``peakready/lab/components/``."""
    found: dict[str, Component] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Component)
                and value is not Component
                and value.__module__ == module.__name__
            ):
                found[value.kind] = value()
    return found


def in_dependency_order(found: dict[str, Component]) -> tuple[Component, ...]:
    """Each component after the ones it names in ``after`` (ties: by kind, for a stable
    order); a missing or circular dependency is a programming error, raised at import."""
    for component in found.values():
        missing = set(component.after) - set(found)
        if missing:
            raise RuntimeError(f"lab component {component.kind}: needs unknown {sorted(missing)}")
    ordered: list[Component] = []
    waiting = dict(found)
    while waiting:
        ready = sorted(
            kind for kind, c in waiting.items() if all(dep not in waiting for dep in c.after)
        )
        if not ready:
            raise RuntimeError(
                f"lab components depend on each other in a circle: {sorted(waiting)}"
            )
        ordered.append(waiting.pop(ready[0]))
    return tuple(ordered)


#: Every component, in the order ``up`` starts them.
COMPONENTS: tuple[Component, ...] = in_dependency_order(discover())


def packages() -> dict[str, str]:
    """Every binary the components run → where it comes from when it is missing."""
    return {name: pkg for c in COMPONENTS for name, pkg in c.binaries.items()}


def secret_keys() -> tuple[str, ...]:
    """Keys of ``secrets.json``: what the components need generated."""
    return tuple(key for c in COMPONENTS for key in c.secret_keys)


def server_ports(plan: Plan) -> dict[int, str]:
    """Port → what listens there, for every server ``up`` starts."""
    return {port: what for c in COMPONENTS for port, what in c.ports(plan).items()}


def directories(plan: Plan) -> list[tuple[Path, str, int]]:
    """``(path, owner, mode)`` of every folder the servers need, made before rendering."""
    return [(plan.lab / "logs", "root", 0o755)] + [
        d for c in COMPONENTS for d in c.directories(plan)
    ]


def rendered_files(plan: Plan) -> list[Path]:
    return [path for c in COMPONENTS for path in c.rendered_files(plan)]


def endpoints(plan: Plan) -> dict[str, Any]:
    """``state.json``'s ``endpoints``: each component's part."""
    return {key: value for c in COMPONENTS for key, value in c.endpoints(plan).items()}


def outputs(plan: Plan, leader: str | None = None) -> dict[str, Any]:
    """The DESIGN §3 outputs; ``leader`` is the database primary when known."""
    facts = {"db_leader": leader} if leader else {}
    found: dict[str, Any] = {"stack": plan.stack, "target": "lab", "availability_zones": plan.azs}
    for component in COMPONENTS:
        found.update(component.outputs(plan, facts))
    return found


def ansible_vars(plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
    """Variables shared by every host (secrets included: they go to a 0600 file).

    ``lab_regional_roles`` / ``lab_az_roles`` tell ``playbooks/project/lab.yml`` which
    roles render where.
    """
    roles = [c for c in COMPONENTS if c.role]
    variables: dict[str, Any] = {
        "lab_regional_roles": [c.role for c in roles if c.regional],
        "lab_az_roles": [c.role for c in roles if not c.regional],
    }
    for component in COMPONENTS:
        variables.update(component.ansible_vars(plan, secrets))
    return variables


def inventory(plan: Plan) -> dict[str, Any]:
    """One host per AZ and a regional one, all this machine (rendered in parallel)."""
    hosts = {
        f"az-{az}": {k: v for c in COMPONENTS for k, v in c.host_vars(plan, i).items()}
        for i, az in enumerate(plan.azs)
    }
    return {
        "lab": {
            "children": {
                "lab_regional": {"hosts": {"regional": {}}},
                "lab_azs": {"hosts": hosts},
            },
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
            },
        }
    }
