"""summary.json exactly as DESIGN §7; report.html and the PNG timeline agree with it."""

import json
from pathlib import Path

from peakready.load.records import RequestRecord
from peakready.report import html, timeline
from peakready.report.summary import (
    DETECTION_KEYS,
    PIPELINE_KEYS,
    SCENARIO_KEYS,
    DrillResult,
    ScenarioResult,
    validate,
    write_json,
)


def result() -> DrillResult:
    drill = DrillResult(
        "lab", "dev", started="2026-11-22T01:00:00+00:00", finished="2026-11-22T01:09:00+00:00"
    )
    drill.scenarios.append(
        ScenarioResult(
            name="db-primary-loss",
            status="passed",
            rto_s=19.4,
            requests=5120,
            failed_requests=3,
            acked_orders=2400,
            steady_state_after=True,
            journal="journals/db-primary-loss.json",
            rto_objective_s=25.0,
            timeline="timelines/db-primary-loss.png",
        )
    )
    drill.scenarios.append(
        ScenarioResult(
            name="cache-primary-loss",
            status="failed",
            rto_s=0.2,
            lost_orders=1,
            reasons=["1 acknowledged orders lost"],
            journal="journals/cache-primary-loss.json",
        )
    )
    drill.backup = {
        "rto_s": 9.8,
        "rpo_s": 0.0,
        "verified_orders": 2400,
        "missing_orders": 0,
        "passed": True,
        "reasons": [],
    }
    return drill


def test_summary_has_exactly_the_design_keys(tmp_path: Path) -> None:
    summary = result().summary()
    write_json(tmp_path / "summary.json", summary)
    loaded = json.loads((tmp_path / "summary.json").read_text())
    assert list(loaded) == [
        "target",
        "stack",
        "started",
        "finished",
        "passed",
        "scenarios",
        "backup",
    ]
    assert all(tuple(s) == SCENARIO_KEYS + DETECTION_KEYS for s in loaded["scenarios"])
    assert list(loaded["backup"]) == ["rto_s", "rpo_s", "verified_orders", "missing_orders"]
    assert loaded["passed"] is False  # one scenario failed
    assert validate(loaded) == []


def test_a_pipeline_scenario_adds_the_back_offices_figures_after_the_others() -> None:
    drill = result()
    outage = ScenarioResult(name="backoffice-outage", status="passed")
    outage.record({"delivered_orders": 694, "missing_deliveries": 0, "applied_twice": 0})
    outage.record({"drain_s": 1.7, "order_p99_ms": 23.2})
    drill.scenarios.append(outage)
    entry = drill.summary()["scenarios"][-1]
    assert tuple(entry) == SCENARIO_KEYS + DETECTION_KEYS + PIPELINE_KEYS
    assert [entry[k] for k in PIPELINE_KEYS] == [694, 0, 0, 1.7]
    # a stack without a pipeline keeps the plain entry
    assert tuple(drill.summary()["scenarios"][0]) == SCENARIO_KEYS + DETECTION_KEYS
    assert validate(drill.summary()) == []


def test_validate_catches_a_summary_that_says_passed_when_a_scenario_failed() -> None:
    summary = result().summary()
    summary["passed"] = True
    assert validate(summary) == ["passed is True, scenarios say False"]


def test_html_shows_every_scenario_with_its_verdict_figures_and_timeline() -> None:
    page = html.render(result())
    assert '<span class="failed">failed</span></h1>' in page
    assert 'db-primary-loss — <span class="passed">passed</span>' in page
    assert "19.40" in page and "≤ 25" in page
    assert '<img src="timelines/db-primary-loss.png"' in page
    assert "1 acknowledged orders lost" in page
    assert 'id="backup"' in page and "9.80" in page


def test_timeline_png_marks_fault_and_recovery(tmp_path: Path) -> None:
    records = [
        RequestRecord(100 + i * 0.1, 100.05 + i * 0.1, "order", 201, i % 7 != 0) for i in range(200)
    ]
    events = [{"type": "fault", "event": "x", "at": 105.0}]
    out = timeline.plot(records, events, "db-primary-loss", tmp_path / "t" / "x.png", rto_s=3.0)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_a_result_records_known_figures_as_fields_and_the_rest_as_extra() -> None:
    from peakready.report.summary import ScenarioResult

    result = ScenarioResult(name="db-primary-loss")
    result.record({"rto_s": 4.2, "lost_orders": 0, "read_p95_ms": 12.5})
    assert (result.rto_s, result.lost_orders) == (4.2, 0)
    assert result.extra == {"read_p95_ms": 12.5}
    assert "read_p95_ms" not in result.entry()


def test_a_peak_scenario_adds_its_fields_after_the_design_keys(tmp_path: Path) -> None:
    from peakready.report import peak_timeline
    from peakready.report.summary import DETECTION_KEYS, PEAK_KEYS, SCENARIO_KEYS
    from peakready.topology import Slo
    from peakready.verdict.peak import measure

    records = [
        RequestRecord(100 + i * 0.1, 100 + i * 0.1 + 0.02, kind, status, status < 500)
        for i, (kind, status) in enumerate([("order", 201), ("product", 200), ("search", 503)] * 50)
    ]
    scaling = [{"event": "in_service", "at": 99.0, "in_service": 3, "target": 5.0}]
    figures = measure(records, [], scaling, Slo())
    result = ScenarioResult(name="peak-surge", status="passed", peak=figures.as_dict())
    entry = result.entry()
    assert tuple(entry) == SCENARIO_KEYS + PEAK_KEYS + DETECTION_KEYS
    assert entry["shed"] == {"order": 0, "browse": 0, "search": 50}
    assert entry["instances"] == [[0.0, 3]]
    summary = {"target": "lab", "stack": "dev", "started": "", "finished": "", "passed": True}
    assert validate({**summary, "scenarios": [entry]}) == []
    assert validate({**summary, "scenarios": [{**entry, "extra": 1}]})  # only these keys
    out = peak_timeline.plot(
        records, [], figures.instances, Slo(), "peak-surge", tmp_path / "p.png"
    )
    assert out.stat().st_size > 10_000


def test_html_has_a_detection_table_and_the_timeline_shades_alerts(tmp_path: Path) -> None:
    drill = result()
    drill.scenarios[0].alerts = [
        {"name": "DatabaseNoWriter", "fired_after_s": 2.1, "resolved_after_s": 22.9}
    ]
    drill.scenarios[0].mttd_s = 2.1
    page = html.render(drill)
    assert "<h2>Detection</h2>" in page
    assert "<td>DatabaseNoWriter</td><td>2.10</td><td>22.90</td>" in page
    records = [
        RequestRecord(100 + i * 0.1, 100.05 + i * 0.1, "order", 201, True) for i in range(200)
    ]
    events = [
        {"type": "fault", "event": "x", "at": 105.0},
        {"type": "alert", "name": "DatabaseNoWriter", "at": 107.1, "until": 110.0},
        {"type": "alert", "name": "OrderErrors", "at": 107.1, "until": None},
    ]
    out = timeline.plot(records, events, "db-primary-loss", tmp_path / "a.png", rto_s=3.0)
    assert out.read_bytes()[:4] == b"\x89PNG"
