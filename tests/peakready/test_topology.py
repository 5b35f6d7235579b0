"""The topology model: every shipped stack loads; every kind of mistake is one clear line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from peakready.errors import ConfigError
from peakready.topology import (
    OUTPUT_KEYS,
    SCENARIOS,
    DatabaseDeployment,
    Topology,
    stacks_dir,
)

BASE: dict[str, Any] = {
    "aws:region": "eu-central-1",
    "peakready:region": "eu-central-1",
    "peakready:forecast": {"requests_per_s": 100, "orders_per_s": 10},
}


def errors_for(**overrides: Any) -> list[str]:
    config = dict(BASE)
    for key, value in overrides.items():
        config[f"peakready:{key}"] = value
    with pytest.raises(ConfigError) as caught:
        Topology.from_config("bad", config, "stacks/Pulumi.bad.yaml")
    return caught.value.lines


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_load_with_three_azs(stack: str) -> None:
    topology = Topology.load(stack)
    assert topology.stack == stack
    assert topology.az_count == 3
    assert all(az.startswith(topology.region) for az in topology.az_names)


def test_prod_is_protected_with_peak_windows_and_freezes() -> None:
    prod = Topology.load("prod")
    assert prod.protected
    assert {w.name for w in prod.peak_windows} == {"singles-day", "black-friday"}
    assert prod.freeze_windows


def test_az_count_names_zones_in_the_region() -> None:
    topology = Topology.from_config("t", {**BASE, "peakready:availability_zones": 2}, "x")
    assert topology.az_names == ["eu-central-1a", "eu-central-1b"]


def test_defaults_fill_every_tier() -> None:
    topology = Topology.from_config("t", BASE, "x")
    assert topology.database.deployment is DatabaseDeployment.MULTI_AZ_INSTANCE
    assert topology.app.min_size <= topology.app.max_size
    assert topology.lab.port_base < 32768


def test_objective_falls_back_to_design_targets() -> None:
    topology = Topology.from_config("t", BASE, "x")
    assert topology.objective("db-primary-loss").rto_s == 25
    assert topology.objective("az-power-loss").rto_s == 30
    assert topology.objective("cache-primary-loss").rto_s == 5
    assert set(SCENARIOS) == {
        "app-instance-loss",
        "az-power-loss",
        "db-primary-loss",
        "cache-primary-loss",
        "search-node-loss",
        "degraded-dependencies",
        "backup-restore",
        "peak-surge",
        "flash-sale",
        "az-loss-at-peak",
        "backoffice-outage",
        "broker-node-loss",
    }
    assert topology.objective("az-loss-at-peak").rto_s == 30


def test_stack_objective_overrides_default() -> None:
    topology = Topology.from_config(
        "t", {**BASE, "peakready:resiliency": {"db-primary-loss": {"rto_s": 40}}}, "x"
    )
    assert topology.objective("db-primary-loss").rto_s == 40
    assert topology.objective("az-power-loss").rto_s == 30


def test_other_namespaces_are_ignored() -> None:
    topology = Topology.from_config("t", {**BASE, "aws:profile": "shop"}, "x")
    assert topology.region == "eu-central-1"


def test_pulumi_config_strings_load_like_the_yaml() -> None:
    # Inside the program the engine hands every value over as a string (objects as JSON).
    as_engine = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in BASE.items()
    }
    as_engine["peakready:availability_zones"] = "3"
    decoded = {}
    for key, value in as_engine.items():
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value
    assert Topology.from_config("t", decoded, "x") == Topology.from_config(
        "t", {**BASE, "peakready:availability_zones": 3}, "x"
    )


def test_unknown_key_names_it_and_lists_known_keys() -> None:
    [line] = errors_for(replicas=3)
    assert line.startswith("stacks/Pulumi.bad.yaml: peakready:replicas: unknown key")
    assert "database" in line


def test_unknown_nested_key_names_its_path() -> None:
    [line] = errors_for(app={"min_size": 1, "max_sise": 3})
    assert line == "stacks/Pulumi.bad.yaml: peakready:app.max_sise: unknown key"


def test_wrong_type_names_path_value_and_expectation() -> None:
    [line] = errors_for(app={"min_size": "lots"})
    assert line == (
        'stacks/Pulumi.bad.yaml: peakready:app.min_size: got "lots", '
        "expected a valid integer, unable to parse string as an integer"
    )


def test_one_az_is_refused() -> None:
    [line] = errors_for(availability_zones=1)
    assert "peakready:availability_zones: got 1" in line
    assert "expected a count from 2 to 6" in line


def test_one_named_az_is_refused() -> None:
    [line] = errors_for(availability_zones=["eu-central-1a"])
    assert "peakready:availability_zones" in line


def test_az_outside_region_is_refused() -> None:
    [line] = errors_for(availability_zones=["eu-central-1a", "us-east-1b"])
    assert line.endswith("peakready:availability_zones: us-east-1b is not in region eu-central-1")


def test_window_ending_before_it_starts_is_refused() -> None:
    window = {
        "name": "bf",
        "start": "2026-11-28T00:00",
        "end": "2026-11-27T00:00",
        "requests_per_s": 9,
    }
    [line] = errors_for(peak_windows=[window])
    assert line == (
        "stacks/Pulumi.bad.yaml: peakready:peak_windows[0]: "
        "end 2026-11-27T00:00:00 must be after start 2026-11-28T00:00:00"
    )


def test_window_order_is_compared_in_utc() -> None:
    # 01:00 in Shanghai is 18:00 the day before in UTC: before 00:00 UTC on the same date.
    window = {
        "start": "2026-11-11T00:00+00:00",
        "end": "2026-11-11T01:00",
        "timezone": "Asia/Shanghai",
    }
    [line] = errors_for(freeze_windows=[window])
    assert "peakready:freeze_windows[0]: end" in line


def test_unknown_time_zone_is_refused() -> None:
    window = {"start": "2026-11-11T00:00", "end": "2026-11-12T00:00", "timezone": "Mars/Olympus"}
    [line] = errors_for(freeze_windows=[window])
    assert line.endswith(
        "peakready:freeze_windows[0].timezone: got 'Mars/Olympus', "
        "expected an IANA time zone name such as Europe/Berlin"
    )


def test_negative_size_is_refused() -> None:
    [line] = errors_for(database={"replicas": -1})
    assert line == (
        "stacks/Pulumi.bad.yaml: peakready:database.replicas: got -1, "
        "expected greater than or equal to 0"
    )


def test_min_above_max_is_refused() -> None:
    [line] = errors_for(app={"min_size": 9, "max_size": 3})
    assert line.endswith("peakready:app: min_size 9 must not exceed max_size 3")


def test_unknown_scenario_in_policy_is_refused() -> None:
    [line] = errors_for(resiliency={"meteor-strike": {"rto_s": 1}})
    assert line.startswith("stacks/Pulumi.bad.yaml: peakready:resiliency.meteor-strike: got")


def test_several_bad_fields_give_several_lines() -> None:
    lines = errors_for(availability_zones=1, app={"min_size": -2}, bogus=True)
    assert len(lines) == 3
    assert any("peakready:bogus" in line for line in lines)
    assert any("peakready:app.min_size" in line for line in lines)
    assert any("peakready:availability_zones" in line for line in lines)


def test_missing_forecast_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        Topology.from_config("t", {"peakready:region": "eu-central-1"}, "f.yaml")
    assert caught.value.lines == ["f.yaml: peakready:forecast: missing, expected a value"]


def test_freeze_window_covers_a_moment() -> None:
    prod = Topology.load("prod")
    inside = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    outside = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    window = prod.freeze_at(inside)
    assert window is not None and "Black Friday" in window.reason
    assert prod.freeze_at(outside) is None


def test_peak_window_prewarm_is_before_start_in_utc() -> None:
    prod = Topology.load("prod")
    singles = next(w for w in prod.peak_windows if w.name == "singles-day")
    # 2026-11-11 00:00 in Shanghai is 2026-11-10 16:00 UTC; 90 minutes earlier is 14:30.
    assert singles.start_utc == datetime(2026, 11, 10, 16, 0, tzinfo=UTC)
    assert singles.prewarm_utc == datetime(2026, 11, 10, 14, 30, tzinfo=UTC)


def test_stack_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.broken.yaml"
    bad.write_text("config:\n  peakready:region: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        Topology.from_stack_file(bad)
    [line] = caught.value.lines
    assert line.startswith(f"{bad}: line ")
    assert "not valid YAML" in line


def test_stack_file_without_config_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.empty.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="expected a mapping with a 'config:' mapping"):
        Topology.from_stack_file(bad)


def test_unknown_stack_lists_known_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "Pulumi.alpha.yaml").write_text(yaml.safe_dump({"config": BASE}))
    monkeypatch.setenv("PEAKREADY_STACKS_DIR", str(tmp_path))
    assert stacks_dir() == tmp_path
    with pytest.raises(ConfigError) as caught:
        Topology.load("beta")
    assert caught.value.lines == [
        f"unknown stack 'beta': no {tmp_path}/Pulumi.beta.yaml; known stacks: alpha"
    ]
    assert Topology.load("alpha").stack == "alpha"


def test_output_keys_are_those_of_design_section_3() -> None:
    assert OUTPUT_KEYS == (
        "stack",
        "target",
        "availability_zones",
        "endpoint",
        "app_group",
        "db_primary",
        "db_replicas",
        "cache_group",
        "search_domain",
        "backup_vault",
    )


# --------------------------------------------------------------------------- recurring windows


def _window(**kw: Any) -> dict[str, Any]:
    return {
        "name": "sale",
        "start": "2026-11-11T00:00",
        "end": "2026-11-12T02:00",
        "timezone": "Asia/Shanghai",
        "requests_per_s": 10,
        **kw,
    }


def _occurrence(moment: datetime, **kw: Any) -> tuple[datetime, datetime]:
    topology = Topology.from_config("t", {**BASE, "peakready:peak_windows": [_window(**kw)]}, "x")
    window = topology.peak_windows[0].occurrence(moment)
    return window.start_utc, window.end_utc


def test_a_yearly_window_falls_on_the_same_local_date_next_year() -> None:
    start, end = _occurrence(datetime(2026, 12, 1, tzinfo=UTC), recurs="yearly")
    assert (start, end) == (
        datetime(2027, 11, 10, 16, 0, tzinfo=UTC),
        datetime(2027, 11, 11, 18, 0, tzinfo=UTC),
    )


def test_a_recurring_window_under_way_is_this_years() -> None:
    start, _ = _occurrence(datetime(2027, 11, 11, 3, 0, tzinfo=UTC), recurs="yearly")
    assert start == datetime(2027, 11, 10, 16, 0, tzinfo=UTC)


def test_a_window_that_does_not_recur_stays_where_it_is() -> None:
    start, _ = _occurrence(datetime(2030, 1, 1, tzinfo=UTC))
    assert start == datetime(2026, 11, 10, 16, 0, tzinfo=UTC)


def test_black_friday_is_the_day_after_novembers_fourth_thursday() -> None:
    from peakready.topology import black_friday

    assert [str(black_friday(y)) for y in (2024, 2025, 2026, 2027, 2028)] == [
        "2024-11-29",
        "2025-11-28",
        "2026-11-27",
        "2027-11-26",
        "2028-11-24",
    ]


def test_a_black_friday_window_keeps_its_distance_from_black_friday() -> None:
    # The day before Black Friday 2026 (Thursday) to its Monday: in 2027, Nov 25 to 29.
    start, end = _occurrence(
        datetime(2026, 12, 1, tzinfo=UTC),
        recurs="black-friday",
        start="2026-11-26T00:00",
        end="2026-11-30T00:00",
        timezone="UTC",
    )
    assert (start.date().isoformat(), end.date().isoformat()) == ("2027-11-25", "2027-11-29")


def test_a_29_february_window_recurs_in_leap_years_only() -> None:
    start, _ = _occurrence(
        datetime(2024, 3, 1, tzinfo=UTC),
        recurs="yearly",
        start="2024-02-29T00:00",
        end="2024-02-29T12:00",
        timezone="UTC",
    )
    assert start == datetime(2028, 2, 29, tzinfo=UTC)


def test_the_shipped_prod_stack_has_its_peaks_ahead_every_year() -> None:
    prod = Topology.load("prod")
    after = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    assert all(w.occurrence(after).start_utc > after for w in prod.peak_windows)
    assert prod.freeze_at(datetime(2027, 11, 26, 12, 0, tzinfo=UTC)) is not None


def test_every_shipped_stack_declares_its_peak_objectives() -> None:
    for stack in ("dev", "staging", "prod"):
        slo = Topology.load(stack).slo
        assert 0 < slo.order_p99_ms <= slo.browse_p99_ms
        assert 0.9 <= slo.min_order_goodput <= 1
    assert Topology.load("dev").slo.order_p99_ms == 250  # DESIGN §8's lab objective


def test_a_goodput_above_one_is_refused() -> None:
    [line] = errors_for(slo={"min_order_goodput": 1.5})
    assert "peakready:slo.min_order_goodput: got 1.5" in line
