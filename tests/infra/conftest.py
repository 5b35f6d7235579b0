"""Plans of the real stacks, recorded once per session under Pulumi mocks.

The runner sets the mocks before it runs (imports) the program, as Pulumi's testing
guide asks; ``PEAKREADY_NOW`` pins the pre-warm schedule to a date before the peaks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from peakready.preview import slim
from peakready.preview.runner import record
from peakready.topology import REPO_ROOT

# The program's modules (`infra.*`) are imported as the program itself imports them, after
# the preview's slim pulumi_aws packages are in place (as `peakready preview` does).
slim.install()
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

NOW = "2026-11-01T00:00:00+00:00"
Plan = dict[str, Any]


def _record(stack: str, stacks: Path | None = None, now: str = NOW) -> Plan:
    saved = os.environ.get("PEAKREADY_NOW")
    os.environ["PEAKREADY_NOW"] = now
    try:
        return record(REPO_ROOT, stack, stacks=stacks)
    finally:
        if saved is None:
            os.environ.pop("PEAKREADY_NOW")
        else:
            os.environ["PEAKREADY_NOW"] = saved


@pytest.fixture(scope="session")
def prod_plan() -> Plan:
    plan = _record("prod")
    assert plan["error"] is None, plan["error"]
    return plan


@pytest.fixture(scope="session")
def dev_plan() -> Plan:
    plan = _record("dev")
    assert plan["error"] is None, plan["error"]
    return plan


@pytest.fixture
def plan_with(tmp_path: Path) -> Callable[..., Plan]:
    """Record a copy of a real stack with some ``peakready:`` settings replaced (or,
    given None, removed)."""

    def make(base: str, now: str = NOW, **settings: Any) -> Plan:
        document = yaml.safe_load((REPO_ROOT / "stacks" / f"Pulumi.{base}.yaml").read_text())
        for key, value in settings.items():  # None: the setting goes
            document["config"][f"peakready:{key}"] = value
            if value is None:
                del document["config"][f"peakready:{key}"]
        (tmp_path / f"Pulumi.{base}.yaml").write_text(yaml.safe_dump(document))
        return _record(base, stacks=tmp_path, now=now)

    return make


class Query:
    """Small lookups into a recorded plan."""

    @staticmethod
    def of_type(plan: Plan, kind: str) -> list[dict[str, Any]]:
        return [r for r in plan["resources"] if r["type"] == kind]

    @staticmethod
    def one(plan: Plan, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [r for r in Query.of_type(plan, kind) if name is None or r["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    @staticmethod
    def subnet_zones(plan: Plan) -> dict[str, str]:
        """Mock subnet id → AZ."""
        return {
            f"{r['name']}-id": r["inputs"]["availabilityZone"]
            for r in Query.of_type(plan, "aws:ec2/subnet:Subnet")
        }


@pytest.fixture(scope="session")
def q() -> type[Query]:
    return Query
