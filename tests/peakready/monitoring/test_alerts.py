"""The alert catalogue's Prometheus rendering: valid for promtool, and each business
rule fires on its signal and only on it (``promtool test rules`` on synthetic series)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from peakready.monitoring.alerts import catalogue, expected, prometheus_rules
from peakready.topology import Topology

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus)")


def _rules_file(tmp_path: Path, stack: str = "dev") -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(prometheus_rules(Topology.load(stack)), sort_keys=False))
    return path


@needs_promtool
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_rendered_rules_pass_promtool(tmp_path: Path, stack: str) -> None:
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(_rules_file(tmp_path, stack))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(catalogue(Topology.load(stack)))} rules found" in checked.stdout


def _promtool_test(tmp_path: Path, series: list[dict], alerts: list[dict]) -> str:
    rules = _rules_file(tmp_path)
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "2s",
        "tests": [{"interval": "2s", "input_series": series, "alert_rule_test": alerts}],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    run = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    return run.stdout + run.stderr if run.returncode else ""


def _exp(name: str) -> dict:
    (alert,) = [a for a in catalogue(Topology.load("dev")) if a.name == name]
    return {
        "exp_labels": {"severity": alert.severity, "kind": alert.kind},
        "exp_annotations": {"summary": alert.summary},
    }


def _orders(attempts: int, order_rate: int, minutes_before: int, after: int) -> list[dict]:
    """Counters growing 2 s apart: order attempts (POST /orders) and orders created at
    the given rates (per 2 s) for ``minutes_before`` minutes, then ``after`` orders per
    step while the attempts go on."""
    steps = minutes_before * 30
    return [
        {
            "series": "storefront_orders_created_total",
            "values": f"0+{order_rate}x{steps} {order_rate * steps}+{after}x60",
        },
        {
            "series": 'storefront_http_requests_total{route="/orders",method="POST",status="201"}',
            "values": f"0+{attempts}x{steps + 60}",
        },
    ]


@needs_promtool
def test_order_rate_drop_fires_when_orders_stop_while_attempts_hold(tmp_path: Path) -> None:
    firing = {
        "eval_time": "3m",
        "alertname": "OrderRateDrop",
        "exp_alerts": [_exp("OrderRateDrop")],
    }
    assert _promtool_test(tmp_path, _orders(10, 10, 2, 0), [firing]) == ""
    # Orders keep coming: silent.
    silent = {"eval_time": "3m", "alertname": "OrderRateDrop", "exp_alerts": []}
    assert _promtool_test(tmp_path, _orders(10, 10, 2, 10), [silent]) == ""
    # Customers stop trying (the load's mix changed): silent too.
    fewer = _orders(10, 10, 2, 0)
    fewer[1]["values"] = "0+10x60 600+0x60"
    assert _promtool_test(tmp_path, fewer, [silent]) == ""
    # And the check can fail: expecting silence while orders stopped is reported.
    assert "OrderRateDrop" in _promtool_test(tmp_path, _orders(10, 10, 2, 0), [silent])


@needs_promtool
def test_checkout_probe_fires_on_a_failed_round_and_on_a_probe_gone_silent(
    tmp_path: Path,
) -> None:
    def series(success: str, up: str = "1x30") -> list[dict]:
        return [
            {"series": "peakready_checkout_probe_success", "values": success},
            {"series": 'up{job="checkout-probe"}', "values": up},
        ]

    fire = {"eval_time": "40s", "alertname": "CheckoutProbe", "exp_alerts": [_exp("CheckoutProbe")]}
    silent = {**fire, "exp_alerts": []}
    assert _promtool_test(tmp_path, series("1x30"), [silent]) == ""
    # Rounds fail from 30 s on: firing once that held 4 s.
    assert _promtool_test(tmp_path, series("1x14 0x15"), [fire]) == ""
    # One failed round, then passes again: not for 4 s, silent.
    assert _promtool_test(tmp_path, series("1x14 0 1x14"), [silent]) == ""
    # The probe stopped answering its scrapes: firing too.
    assert _promtool_test(tmp_path, series("1x14", "1x14 0x15"), [fire]) == ""
    # And the check can fail: expecting silence while rounds fail is reported.
    assert "CheckoutProbe" in _promtool_test(tmp_path, series("1x14 0x15"), [silent])


@needs_promtool
def test_order_errors_fire_above_the_stacks_ratio_only(tmp_path: Path) -> None:
    def series(errors_per_step: int) -> list[dict]:
        base = 'storefront_http_requests_total{route="/orders",method="POST",status='
        return [
            {"series": base + '"201"}', "values": f"0+{100 - errors_per_step}x60"},
            {"series": base + '"503"}', "values": f"0+{errors_per_step}x60"},
        ]

    fire = {
        "eval_time": "1m",
        "alertname": "OrderErrors",
        "exp_alerts": [_exp("OrderErrors")],
    }
    silent = {**fire, "exp_alerts": []}
    assert _promtool_test(tmp_path, series(10), [fire]) == ""  # 10 % > 5 %
    assert _promtool_test(tmp_path, series(2), [silent]) == ""  # 2 % < 5 %


@needs_promtool
def test_queue_node_lost_fires_on_any_broker_node_gone_and_resolves_after(
    tmp_path: Path,
) -> None:
    def series(*nodes: str) -> list[dict]:
        return [
            {"series": f'probe_success{{job="queue",instance="127.0.0.1:2907{i}"}}', "values": v}
            for i, v in enumerate(nodes)
        ]

    at = {"eval_time": "40s", "alertname": "QueueNodeLost"}
    fire, silent = {**at, "exp_alerts": [_exp("QueueNodeLost")]}, {**at, "exp_alerts": []}
    assert _promtool_test(tmp_path, series("1x30", "1x30", "1x30"), [silent]) == ""
    # The leader's node dies at 30 s: firing on the next evaluation.
    assert _promtool_test(tmp_path, series("1x30", "1x14 0x15", "1x30"), [fire]) == ""
    # Every node gone: firing too (a count of the lost, not of the living).
    assert _promtool_test(tmp_path, series("1x14 0x15", "1x14 0x15", "1x14 0x15"), [fire]) == ""
    # Restarted: resolved.
    assert _promtool_test(tmp_path, series("1x30", "1x5 0x5 1x19", "1x30"), [silent]) == ""
    # And the check can fail: expecting silence while a node is gone is reported.
    assert "QueueNodeLost" in _promtool_test(
        tmp_path, series("1x30", "1x14 0x15", "1x30"), [silent]
    )


def test_each_fault_scenario_expects_the_alerts_that_see_its_fault() -> None:
    dev = Topology.load("dev")
    assert expected(dev, "broker-node-loss") == ["QueueNodeLost"]
    assert expected(dev, "db-primary-loss") == ["DatabaseNoWriter", "OrderErrors", "CheckoutProbe"]
    assert expected(dev, "cache-primary-loss") == ["CacheUnavailable"]
    assert "UnhealthyHosts" in expected(dev, "app-instance-loss")
    assert expected(dev, "backup-restore") == []


def test_thresholds_come_from_the_stack() -> None:
    prod = {a.name: a for a in catalogue(Topology.load("prod"))}
    assert prod["DatabaseReplicaLag"].expression().endswith("> 10")
    assert prod["OrderLatency"].threshold == Topology.load("prod").slo.order_p99_ms


@needs_promtool
def test_unhealthy_hosts_fire_for_an_instance_in_service_not_for_one_starting(
    tmp_path: Path,
) -> None:
    def state(server: str, up: str, down: str) -> list[dict]:
        labels = f'proxy="storefront",server="{server}"'
        return [
            {"series": f'haproxy_server_status{{{labels},state="UP"}}', "values": up},
            {"series": f'haproxy_server_status{{{labels},state="DOWN"}}', "values": down},
        ]

    fire = {
        "eval_time": "40s",
        "alertname": "UnhealthyHosts",
        "exp_alerts": [_exp("UnhealthyHosts")],
    }
    silent = {**fire, "exp_alerts": []}
    # In service for 20 s, then DOWN: an unhealthy host.
    lost = state("app0", "1x10 0x20", "0x10 1x20")
    assert _promtool_test(tmp_path, lost, [fire]) == ""
    # DOWN from the start (still starting, never UP): not yet in service.
    starting = state("app1", "0x30", "1x30")
    assert _promtool_test(tmp_path, starting, [silent]) == ""
    # The supervisor replaced a dead instance before HAProxy marked it DOWN.
    lost = [{"series": "peakready_app_group_instances_lost_total", "values": "0x10 1x20"}]
    assert _promtool_test(tmp_path, lost, [{**fire, "eval_time": "24s"}]) == ""
    assert _promtool_test(tmp_path, lost, [{**silent, "eval_time": "58s"}]) == ""  # resolved
    # Started (DOWN while it boots), then UP: it just came into service.
    started = state("app2", "0x18 1x12", "1x18 0x12")
    assert _promtool_test(tmp_path, started, [{**silent, "eval_time": "38s"}]) == ""


@needs_promtool
def test_shed_answers_are_not_target_errors(tmp_path: Path) -> None:
    search = 'storefront_http_requests_total{route="/search",method="GET",status="503"}'
    shed = [
        {"series": search, "values": "0+10x30"},
        {"series": 'storefront_shed_total{feature="search"}', "values": "0+10x30"},
    ]
    silent = {"eval_time": "50s", "alertname": "Target5xx", "exp_alerts": []}
    assert _promtool_test(tmp_path, shed, [silent]) == ""
    failing = [{"series": search, "values": "0+10x30"}]
    fire = {**silent, "exp_alerts": [_exp("Target5xx")]}
    assert _promtool_test(tmp_path, failing, [fire]) == ""
