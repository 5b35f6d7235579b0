"""Bad input in stack files, by class: numbers, encodings, YAML, settings that contradict.

Each case is one clear line naming the file and the field, never a traceback, and
never a silent acceptance (DESIGN: bad input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from peakready.errors import ConfigError
from peakready.topology import Topology, pinned_now

BASE: dict[str, Any] = {
    "aws:region": "eu-central-1",
    "peakready:region": "eu-central-1",
    "peakready:forecast": {"requests_per_s": 100, "orders_per_s": 10},
}
WINDOW = {"name": "sale", "start": "2027-11-11T00:00", "end": "2027-11-12T00:00"}


def lines_for(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Topology.from_config("bad", config, "stacks/Pulumi.bad.yaml")
    return caught.value.lines


def with_(**overrides: Any) -> dict[str, Any]:
    return {**BASE, **{f"peakready:{k}": v for k, v in overrides.items()}}


# numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e308, 1e10])
def test_non_finite_or_absurd_forecasts_are_refused(value: float) -> None:
    [line] = lines_for(with_(forecast={"requests_per_s": value, "orders_per_s": 10}))
    assert line.startswith("stacks/Pulumi.bad.yaml: peakready:forecast.requests_per_s: got ")


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("app", {"max_size": 10**12}, "peakready:app.max_size"),
        ("database", {"replicas": 40}, "peakready:database.replicas"),
        ("cache", {"replicas": 9}, "peakready:cache.replicas"),
        (
            "peak_windows",
            [{**WINDOW, "requests_per_s": 10, "prewarm_minutes": 99999999999}],
            "peakready:peak_windows[0].prewarm_minutes",
        ),
        (
            "peak_windows",
            [{**WINDOW, "requests_per_s": 10, "name": "x" * 100000}],
            "peakready:peak_windows[0].name",
        ),
    ],
)
def test_every_size_has_an_upper_bound(field: str, value: Any, where: str) -> None:
    lines = lines_for(with_(**{field: value}))
    assert len(lines) == 1 and f" {where}: got " in lines[0], lines
    assert len(lines[0]) < 300


# settings that contradict each other ---------------------------------------------------


def test_a_cron_that_is_not_one_is_refused() -> None:
    [line] = lines_for(with_(backup={"full_schedule": "every sunday please"}))
    assert "peakready:backup.full_schedule:" in line and "every sunday please" in line


def test_overlapping_peak_windows_are_refused() -> None:
    second = {**WINDOW, "name": "later", "start": "2027-11-11T12:00", "end": "2027-11-13T00:00"}
    [line] = lines_for(
        with_(peak_windows=[{**WINDOW, "requests_per_s": 10}, {**second, "requests_per_s": 10}])
    )
    assert "peak_windows: sale and later overlap" in line


def test_an_offset_and_a_timezone_together_are_a_warning() -> None:
    window = {**WINDOW, "start": "2027-11-11T00:00+08:00", "timezone": "Asia/Shanghai"}
    topology = Topology.from_config(
        "t", with_(peak_windows=[{**window, "requests_per_s": 10}]), "x"
    )
    assert topology.warnings() == [
        "peakready:peak_windows[0]: start carries a UTC offset and timezone Asia/Shanghai "
        "is given too: the offset wins; give one of them"
    ]


def test_aws_region_must_agree_with_peakready_region() -> None:
    [line] = lines_for({**BASE, "aws:region": "us-east-1"})
    assert line == (
        "stacks/Pulumi.bad.yaml: aws:region us-east-1 differs from peakready:region "
        "eu-central-1: expected the same region in both"
    )


def test_replicas_sharing_an_az_are_a_warning_not_an_error() -> None:
    topology = Topology.from_config("t", with_(database={"replicas": 5}), "x")
    [warning] = topology.warnings()
    assert warning.startswith("peakready:database.replicas: 5 replicas over 3 AZs")
    assert Topology.from_config("t", BASE, "x").warnings() == []


# the file itself -------------------------------------------------------------------------


def stack_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_bytes(content)
    return path


GOOD = b"config:\n  peakready:region: eu-central-1\n  peakready:forecast:\n"
GOOD += b"    requests_per_s: 100\n    orders_per_s: 10\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (GOOD + b"  peakready:stage: \xff\xfe\n", "line 6: byte 0xff is not UTF-8"),
        (GOOD + b"  peakready:region: us-east-1\n", "line 6: not valid YAML: key "),
        (b"a: &a [1, 2]\nb: *a\n", "aliases (*name) are not allowed"),
        (b"config: [unclosed\n", "not valid YAML"),
        (b"- just\n- a list\n", "expected a mapping with a 'config:' mapping"),
    ],
)
def test_a_bad_stack_file_is_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = stack_file(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        Topology.from_stack_file(path)
    [line] = caught.value.lines
    assert line.startswith(str(path)) and expected in line, line


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = stack_file(tmp_path, ("\n".join(levels) + "\n").encode())
    with pytest.raises(ConfigError, match="aliases"):
        Topology.from_stack_file(path)


def test_a_huge_stack_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = stack_file(tmp_path, GOOD + b"#" * 300_000 + b"\n")
    with pytest.raises(ConfigError, match="expected a stack file of at most"):
        Topology.from_stack_file(path)


# the environment -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["garbage", "2027-13-01", ""])
def test_a_bad_peakready_now_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PEAKREADY_NOW", value)
    with pytest.raises(ConfigError, match=r"^PEAKREADY_NOW="):
        pinned_now()


def test_peakready_now_without_an_offset_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKREADY_NOW", "2027-11-11T00:00")
    now = pinned_now()
    assert now is not None and now.utcoffset() is not None and now.hour == 0
