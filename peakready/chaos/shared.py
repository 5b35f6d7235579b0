"""What every activity of the extension shares: the driver, the run folder, the policy.

Configuration keys (Chaos Toolkit ``configuration``; see docs/internals.md):

- ``peakready_target``: ``lab`` (default) or ``aws``;
- ``peakready_stack``: the stack name (default ``dev``);
- ``peakready_scenario``: the scenario the experiment rehearses (DESIGN §6);
- ``peakready_run_dir``: where load records, ledger and fault events go (default
  ``<repo>/.lab/runs/<scenario>``);
- ``peakready_audit_token`` (secret, AWS): the storefront's audit token; the lab's
  comes from its ``secrets.json``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready import paths
from peakready.errors import PeakreadyError
from peakready.load.records import append_event
from peakready.targets import TARGETS, Driver, get_driver
from peakready.topology import REPO_ROOT, SCENARIOS, Objective, Topology, check_stack_name
from peakready.verdict.failover import LAB_RTO_TARGETS


def target_of(configuration: Configuration) -> str:
    target = str((configuration or {}).get("peakready_target") or "lab")
    if target not in TARGETS:
        raise ActivityFailed(f"peakready_target {target!r}: expected one of {', '.join(TARGETS)}")
    return target


def stack_of(configuration: Configuration) -> str:
    stack = str((configuration or {}).get("peakready_stack") or "dev")
    try:
        return check_stack_name(stack)
    except PeakreadyError as exc:
        raise ActivityFailed(f"peakready_stack: {exc.lines[0]}") from None


def scenario_of(configuration: Configuration) -> str:
    scenario = str((configuration or {}).get("peakready_scenario") or "")
    if scenario not in SCENARIOS:
        raise ActivityFailed(
            f"peakready_scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}"
        )
    return scenario


def run_dir(configuration: Configuration) -> Path:
    """The run folder of this experiment (load records, ledger, fault events)."""
    given = (configuration or {}).get("peakready_run_dir")
    if given is not None:
        try:
            return paths.output_dir(str(given), "peakready_run_dir")
        except PeakreadyError as exc:
            raise ActivityFailed(exc.lines[0]) from None
    base = Path(os.environ.get("PEAKREADY_LAB_DIR") or REPO_ROOT / ".lab")
    return base / "runs" / scenario_of(configuration)


def driver(configuration: Configuration, secrets: Secrets = None) -> Driver:
    """The driver for ``peakready_target``, built per call (no global state)."""
    target = target_of(configuration)
    try:
        return get_driver(target, stack_of(configuration), configuration, secrets)
    except PeakreadyError as exc:
        raise ActivityFailed(f"{target} target: {exc}") from None


def topology(configuration: Configuration) -> Topology:
    try:
        return Topology.load(stack_of(configuration))
    except PeakreadyError as exc:
        raise ActivityFailed(f"stack: {exc}") from None


def rto_limit(configuration: Configuration, scenario: str, model: Topology | None = None) -> float:
    """The RTO a scenario must meet: the stack's policy (of ``model``, default: the
    configured stack's), tightened on the lab by DESIGN §8's targets."""
    objective: Objective = (model or topology(configuration)).objective(scenario)
    limit = float(objective.rto_s)
    if target_of(configuration) == "lab" and scenario in LAB_RTO_TARGETS:
        limit = min(limit, LAB_RTO_TARGETS[scenario])
    return limit


def record(configuration: Configuration, kind: str, event: str, **details: Any) -> float:
    """Write a fault (``kind="fault"``) or a recovery event to the run folder; its time."""
    at = time.time()
    append_event(run_dir(configuration), {"type": kind, "event": event, "at": at, **details})
    return at
