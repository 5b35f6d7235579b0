from pathlib import Path

from peakready.load.records import (
    RecordWriter,
    RequestRecord,
    append_event,
    failed,
    first_fault_at,
    percentile,
    read_events,
    read_records,
    recovery_time,
    timeline,
)


def rec(t0: float, t1: float, kind: str = "order", ok: bool = True, status: int = 201):
    return RequestRecord(t0, t1, kind, status if ok else 503, ok)


def test_recovery_time_counts_only_attempts_started_after_the_fault() -> None:
    records = [
        rec(99.0, 100.5),  # began before the fault: says nothing about recovery
        rec(100.1, 101.0, ok=False),
        rec(102.0, 104.2),
        rec(103.0, 103.5, kind="product"),
    ]
    assert recovery_time(records, 100.0, "writes") == 4.2
    assert recovery_time(records, 100.0, "reads") == 3.5


def test_recovery_time_is_none_when_the_path_never_succeeds_again() -> None:
    records = [rec(101.0, 102.0, ok=False), rec(99.0, 99.5)]
    assert recovery_time(records, 100.0, "writes") is None


def test_failed_counts_every_failed_attempt_of_the_chosen_kinds() -> None:
    records = [rec(1, 2, ok=False), rec(1, 2, kind="search", ok=False), rec(1, 2)]
    assert failed(records) == 2
    assert failed(records, {"order"}) == 1


def test_timeline_buckets_requests_errors_and_latency_per_step() -> None:
    records = [rec(0.0, 0.1), rec(0.5, 0.7, ok=False), rec(2.2, 2.25)]
    buckets = timeline(records, origin=0.0, step=1.0)
    assert [b.requests for b in buckets] == [2, 0, 1]
    assert [b.errors for b in buckets] == [1, 0, 0]
    assert buckets[0].max_ms == 200.0
    assert buckets[2].p50_ms == 50.0


def test_percentile_by_nearest_rank() -> None:
    assert percentile([], 0.95) == 0.0
    assert percentile([float(x) for x in range(1, 101)], 0.95) == 95.0


def test_records_survive_a_torn_last_line(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path / "requests.jsonl")
    writer.write(rec(1.0, 2.0))
    writer.close()
    with (tmp_path / "requests.jsonl").open("a") as out:
        out.write('{"t0": 3.0, "t1"')  # the generator was killed mid-line
    assert read_records(tmp_path / "requests.jsonl") == [rec(1.0, 2.0)]


def test_first_fault_is_the_earliest_fault_event(tmp_path: Path) -> None:
    append_event(tmp_path, {"type": "fault", "event": "a", "at": 20.0})
    append_event(tmp_path, {"type": "recovery", "event": "b", "at": 5.0})
    append_event(tmp_path, {"type": "fault", "event": "c", "at": 10.0})
    assert first_fault_at(read_events(tmp_path)) == 10.0
    assert first_fault_at([]) is None
