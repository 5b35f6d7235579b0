"""Time to detect: the watcher's view of Alertmanager, and the verdict on it."""

from __future__ import annotations

from datetime import UTC, datetime

from peakready.monitoring.detection import AlertWatcher, Seen, _epoch, judge

T0 = 1_800_000_000.0  # the watch starts; the fault comes 30 s later
FAULT = T0 + 30


def seen(name: str, fired: float, resolved: float | None, carried: bool = False) -> Seen:
    return Seen(name, name, fired, fired + 0.5, resolved, carried)


def verdict(alerts: list[Seen], expected: list[str], **kw):
    args = {"steady_until": FAULT, "fault_at": FAULT, "recovered_at": FAULT + 20}
    args.update(kw)
    return judge(alerts, expected, T0, mttd_objective_s=15, resolve_objective_s=60, **args)


def test_an_expected_alert_within_the_objective_passes_with_its_times() -> None:
    result = verdict([seen("DatabaseNoWriter", FAULT + 4.2, FAULT + 25)], ["DatabaseNoWriter"])
    assert result.reasons == []
    assert result.mttd_s == 4.2
    assert result.alerts == [
        {"name": "DatabaseNoWriter", "fired_after_s": 4.2, "resolved_after_s": 25.0}
    ]


def test_a_silent_expected_alert_fails_naming_it() -> None:
    result = verdict([], ["CacheUnavailable"])
    assert result.reasons == ["expected alert CacheUnavailable never fired (mttd objective 15 s)"]
    assert result.mttd_s is None


def test_a_late_alert_fails_with_its_delay() -> None:
    result = verdict([seen("UnhealthyHosts", FAULT + 22, FAULT + 30)], ["UnhealthyHosts"])
    assert result.reasons == [
        "expected alert UnhealthyHosts fired 22.0 s after the fault (mttd objective 15 s)"
    ]


def test_an_alert_that_never_resolves_after_recovery_fails() -> None:
    result = verdict([seen("OrderErrors", FAULT + 3, None)], ["OrderErrors"])
    assert result.reasons == [
        "alert OrderErrors did not resolve within 60 s of recovery (still firing)"
    ]
    late = verdict([seen("OrderErrors", FAULT + 3, FAULT + 20 + 61)], ["OrderErrors"])
    assert "resolved 61.0 s after" in late.reasons[0]


def test_a_page_in_the_steady_state_is_noise_a_ticket_is_not() -> None:
    alerts = [seen("Target5xx", T0 + 10, T0 + 14), seen("DatabaseCpu", T0 + 12, None)]
    result = verdict(alerts, [], tickets=frozenset({"DatabaseCpu"}))
    assert result.reasons == ["alert Target5xx fired in the steady state before the fault (noise)"]
    assert [a["name"] for a in result.alerts] == ["Target5xx", "DatabaseCpu"]


def test_an_earlier_drills_alert_still_firing_is_not_this_ones() -> None:
    result = verdict([seen("OrderLatency", T0 - 40, T0 + 5, carried=True)], [])
    assert result.reasons == [] and result.alerts == []


def test_without_a_fault_the_whole_run_is_steady_state() -> None:
    result = verdict([seen("Target5xx", T0 + 50, T0 + 55)], [], steady_until=None, fault_at=None)
    assert result.reasons == ["alert Target5xx fired in the steady state before the fault (noise)"]


def _alert(fingerprint: str, name: str, starts: str) -> dict:
    return {
        "fingerprint": fingerprint,
        "startsAt": starts,
        "labels": {"alertname": name},
        "status": {"state": "active"},
    }


def test_the_watcher_keeps_each_firing_episode_and_when_it_went() -> None:
    answers: list[list[dict] | None] = [
        [],
        [_alert("a1", "UnhealthyHosts", "2027-01-01T00:00:01.123456789Z")],
        None,  # Alertmanager did not answer: nothing is concluded
        [_alert("a1", "UnhealthyHosts", "2027-01-01T00:00:01.123456789Z")],
        [],
        [_alert("a1", "UnhealthyHosts", "2027-01-01T00:00:09Z")],  # fired again
    ]
    watcher = AlertWatcher(lambda: answers.pop(0), poll_s=60)
    for _ in range(6):
        watcher.poll()
    episodes = watcher.stop()
    assert [e.name for e in episodes] == ["UnhealthyHosts", "UnhealthyHosts"]
    first, second = episodes
    assert first.fired_at == datetime(2027, 1, 1, 0, 0, 1, 123456, tzinfo=UTC).timestamp()
    assert first.resolved_at is not None and second.resolved_at is None
    assert watcher.failed_polls == 1 and watcher.polls == 6


def test_an_alert_alertmanager_merged_into_an_earlier_one_counts_from_when_it_was_seen() -> None:
    old = "2026-01-01T00:00:01Z"
    answers: list[list[dict] | None] = [
        [_alert("a1", "Target5xx", old)],  # already firing: an earlier drill's
        [],
        [_alert("a1", "Target5xx", old)],  # fires again; Alertmanager kept the old start
    ]
    watcher = AlertWatcher(lambda: answers.pop(0), poll_s=60)
    watcher.started_at = _epoch(old) + 100
    for _ in range(3):
        watcher.poll()
    earlier, again = watcher.stop()
    assert earlier.carried and earlier.resolved_at is not None
    assert not again.carried and again.fired_at == again.seen_at > watcher.started_at


def test_alertmanager_times_parse_with_nanoseconds_and_offsets() -> None:
    assert _epoch("2027-01-01T00:00:00Z") == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert (
        _epoch("2027-01-01T01:00:00.5+01:00") == datetime(2027, 1, 1, tzinfo=UTC).timestamp() + 0.5
    )


def test_the_targets_history_replaces_the_polls_of_the_alerts_it_names() -> None:
    from peakready.drill.runner import with_history

    carried = Seen("CacheUnavailable", "c", 0.0, 0.0, carried=True)
    late = Seen("DatabaseNoWriter", "d", 14.0, 14.0, 15.0)  # the poll's view: late
    exact = Seen("DatabaseNoWriter", "d", 10.0, 10.0, 10.5)  # the history's: exact
    missed = Seen("OrderErrors", "o", 12.0, 12.0, 12.2)  # between two polls
    assert with_history([carried, late], None) == [carried, late]
    assert with_history([carried, late], [exact, missed]) == [carried, exact, missed]
    # the history saw the carried one itself: it is not counted twice
    own = Seen("CacheUnavailable", "c", 0.0, 0.0, 2.0, carried=True)
    assert with_history([carried], [own]) == [own]
    # an alert the (lagging) history does not name yet keeps its polled episode
    assert with_history([carried, late], [own]) == [own, late]
