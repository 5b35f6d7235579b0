"""Detection on a real lab: the drill's alert verdict fails for the right reason.

The dev stack with one alarm setting changed (its order-error alert can never fire),
in its own lab (folder ``<repo>/.lab/pytest-detect-<base>``, port block
``PEAKREADY_DETECT_TEST_PORT_BASE``, default 28000), started once and purged after.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_run import running_lab

from peakready.drill.runner import run_scenario
from peakready.lab.components.monitoring import credentials
from peakready.lab.observe import http_get
from peakready.lab.state import LabState
from peakready.topology import REPO_ROOT, Topology

pytestmark = pytest.mark.lab

BASE = int(os.environ.get("PEAKREADY_DETECT_TEST_PORT_BASE", "28000"))
LAB_DIR = REPO_ROOT / ".lab" / f"pytest-detect-{BASE}"
REPORTS = REPO_ROOT / ".lab" / f"pytest-detect-{BASE}-reports"

#: A rule that fires as soon as orders flow: in the steady state, before any fault.
NOISY_RULE = """groups:
  - name: operator
    rules:
      - alert: OrdersFlowing
        expr: sum(rate(storefront_orders_created_total[10s])) > 0
        for: 0s
        labels: {severity: page}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    stacks = tmp_path_factory.mktemp("stacks")
    source = (REPO_ROOT / "stacks" / "Pulumi.dev.yaml").read_text()
    # Orders fail when more than 100 % of them fail: never.
    text = source.replace(
        "  peakready:slo:\n", "  peakready:alarms:\n    order_error_ratio: 1.0\n  peakready:slo:\n"
    )
    assert text != source
    (stacks / "Pulumi.dev.yaml").write_text(text)
    saved = os.environ.get("PEAKREADY_STACKS_DIR")
    os.environ["PEAKREADY_STACKS_DIR"] = str(stacks)
    try:
        with running_lab(BASE, LAB_DIR) as state:
            yield state
    finally:
        if saved is None:
            os.environ.pop("PEAKREADY_STACKS_DIR", None)
        else:
            os.environ["PEAKREADY_STACKS_DIR"] = saved


def test_an_alert_whose_threshold_cannot_be_met_fails_its_scenario_naming_it(
    lab: LabState,
) -> None:
    result, _ = run_scenario("db-primary-loss", Topology.load("dev"), "lab", REPORTS / "silent")
    assert result.status == "failed"
    assert [r for r in result.reasons if "alert" in r] == [
        "expected alert OrderErrors never fired (mttd objective 15 s)"
    ], result.reasons
    fired = {a["name"]: a for a in result.alerts or []}
    # The other expected alert did fire, within the objective: detection was measured.
    assert 0 < fired["DatabaseNoWriter"]["fired_after_s"] <= 15
    assert result.mttd_s is None  # not every expected alert fired


def test_an_alert_firing_in_the_steady_state_fails_the_drill_as_noise(lab: LabState) -> None:
    rules = Path(lab.lab_dir) / "monitoring" / "rules.d" / "operator.yml"
    rules.write_text(NOISY_RULE)
    try:
        os.kill(int(lab.process("prometheus")["pid"]), signal.SIGHUP)
        # Loaded, and every rule quiet once its window holds no earlier test's orders:
        # a rule still pending on the last test's slow orders (OrderLatency's 30 s window
        # after a failover) would fire in this steady state, and be that test's noise.
        _wait_for_rule(lab, "OrdersFlowing", ("inactive", "pending", "firing"))
        time.sleep(12)
        _wait_for_quiet(lab)
        # A short surge whose 20 s baseline is the steady state.
        peak = {"surge": 1.0, "baseline_s": 20, "ramp_s": 5, "hold_s": 5}
        result, _ = run_scenario(
            "peak-surge", Topology.load("dev"), "lab", REPORTS / "noise", peak=peak
        )
    finally:
        rules.unlink()
        os.kill(int(lab.process("prometheus")["pid"]), signal.SIGHUP)
    assert result.status == "failed", (result.reasons, result.alerts)
    noise = [r for r in result.reasons if "noise" in r]
    assert noise == ["alert OrdersFlowing fired in the steady state before the fault (noise)"], (
        result.reasons,
        result.alerts,
    )
    (flowing,) = [a for a in result.alerts or [] if a["name"] == "OrdersFlowing"]
    assert flowing["fired_after_s"] < 20


def _wait_for_quiet(state: LabState, timeout_s: float = 90) -> None:
    """Until every rule Prometheus has loaded is inactive (none pending, none firing)."""
    deadline = time.monotonic() + timeout_s
    busy: list[str] = []
    while time.monotonic() < deadline:
        busy = [r["name"] for r in _rules(state) if r["state"] != "inactive"]
        if not busy:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus rules {busy} still pending or firing after {timeout_s:g} s")


def _rules(state: LabState) -> list[dict[str, Any]]:
    status, body = http_get(
        f"{state.endpoints['prometheus']}/api/v1/rules", auth=credentials(state)
    )
    assert status == 200, body
    return [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]


def _wait_for_rule(
    state: LabState, name: str, wanted: tuple[str, ...], timeout_s: float = 30
) -> None:
    """Until Prometheus has rule ``name`` loaded and in one of the states ``wanted``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(r["name"] == name and r["state"] in wanted for r in _rules(state)):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus rule {name} not {wanted} within {timeout_s:g} s")
