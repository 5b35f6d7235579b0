"""What the load generator saw, one record per HTTP attempt, and the arithmetic on it.

Everything here is pure: the drill, the chaos probes and the tests all compute
throughput, errors, latency and recovery times from the same records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

#: Kinds of request the generator sends, and the path each one exercises.
WRITE_KINDS = frozenset({"order", "hot_order"})  # hot_order: a flash sale's
READ_KINDS = frozenset({"product"})
SEARCH_KINDS = frozenset({"search"})
PATHS: dict[str, frozenset[str]] = {
    "writes": WRITE_KINDS,
    "reads": READ_KINDS,
    "search": SEARCH_KINDS,
    "any": WRITE_KINDS | READ_KINDS | SEARCH_KINDS,
}

REQUESTS_FILE = "requests.jsonl"
FAULTS_FILE = "faults.jsonl"
#: Distributed load: each worker's shard of requests and ledger, in ``<run>/shards/<worker>/``.
SHARDS_DIR = "shards"
#: The generator's own cost: ``{"requests", "cpu_s", "dropped", "workers"}``.
GENERATOR_FILE = "generator.json"
#: A peak run's profile and when it started: ``{"started", "profile", "hot_products"}``.
PROFILE_FILE = "profile.json"


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP attempt: when it started and ended (epoch seconds), what came back.

    ``status`` is the HTTP status, 0 when no answer came (timeout, refused, reset).
    ``ok`` means the answer is what a healthy stack gives for that request (2xx, or
    a 409 "out of stock" for an order, which is the stack working as designed).
    """

    t0: float
    t1: float
    kind: str
    status: int
    ok: bool
    error: str = ""
    attempt: int = 1  # 1: a new request; 2 and up: a retry of it (an order, same key)

    @property
    def latency(self) -> float:
        return self.t1 - self.t0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed(self) -> bool:
        return not self.ok


class RecordWriter:
    """Appends records as JSON lines, flushed so that a killed generator loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, record: RequestRecord) -> None:
        self._file.write(json.dumps(record.as_dict(), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """JSON lines of ``path``; a torn last line (writer killed mid-write) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def run_files(run_dir: Path, name: str) -> list[Path]:
    """``<run>/<name>`` and every worker shard's ``<run>/shards/*/<name>``."""
    return [run_dir / name, *sorted((run_dir / SHARDS_DIR).glob(f"*/{name}"))]


def run_records(run_dir: Path) -> list[RequestRecord]:
    """Every record of a run: the generator's own and its workers' shards, merged."""
    merged = [r for path in run_files(run_dir, REQUESTS_FILE) for r in read_records(path)]
    return sorted(merged, key=lambda r: r.t0)


def read_records(path: Path) -> list[RequestRecord]:
    """All records of a ``requests.jsonl``, in start order."""
    fields = RequestRecord.__dataclass_fields__
    records = [
        RequestRecord(**{k: v for k, v in row.items() if k in fields})
        for row in read_jsonl(path)
        if {"t0", "t1", "kind", "status", "ok"} <= row.keys()
    ]
    return sorted(records, key=lambda r: r.t0)


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """Record a fault or recovery (``{"event", "at", …}``) in the run's ``faults.jsonl``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / FAULTS_FILE).open("a", encoding="utf-8") as out:
        out.write(json.dumps(event, separators=(",", ":")) + "\n")


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / FAULTS_FILE)


def first_fault_at(events: Sequence[dict[str, Any]]) -> float | None:
    """When the first fault was injected (events of ``"type": "fault"``)."""
    times = [float(e["at"]) for e in events if e.get("type") == "fault" and "at" in e]
    return min(times) if times else None


# --------------------------------------------------------------------------- arithmetic


def of_kinds(records: Iterable[RequestRecord], kinds: Iterable[str]) -> list[RequestRecord]:
    wanted = frozenset(kinds)
    return [r for r in records if r.kind in wanted]


def recovery_time(
    records: Iterable[RequestRecord], fault_at: float, path: str = "writes"
) -> float | None:
    """Seconds from ``fault_at`` to the first success of ``path`` that began after it.

    Only attempts started at or after the fault count: an attempt begun before the
    fault says nothing about whether the stack recovered. ``None`` when no attempt
    on that path has succeeded since the fault (not recovered, or no traffic).
    """
    ends = [r.t1 for r in of_kinds(records, PATHS[path]) if r.ok and r.t0 >= fault_at]
    return round(min(ends) - fault_at, 3) if ends else None


def failed(records: Iterable[RequestRecord], kinds: Iterable[str] | None = None) -> int:
    """Failed attempts (of ``kinds``, default every kind)."""
    chosen = list(records) if kinds is None else of_kinds(records, kinds)
    return sum(1 for r in chosen if r.failed)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values`` by nearest rank; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Bucket:
    """One step of the timeline: attempts started in ``[t, t + step)``."""

    t: float  # seconds since the timeline origin
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def timeline(
    records: Sequence[RequestRecord], origin: float | None = None, step: float = 1.0
) -> list[Bucket]:
    """Requests, errors and latency per ``step`` seconds, from ``origin`` (default: first)."""
    if not records:
        return []
    start = records[0].t0 if origin is None else origin
    end = max(r.t0 for r in records)
    count = int((end - start) // step) + 1
    grouped: list[list[RequestRecord]] = [[] for _ in range(max(count, 0))]
    for record in records:
        index = int((record.t0 - start) // step)
        if 0 <= index < len(grouped):
            grouped[index].append(record)
    buckets = []
    for index, group in enumerate(grouped):
        latencies = [r.latency * 1000 for r in group]
        buckets.append(
            Bucket(
                t=round(index * step, 3),
                requests=len(group),
                errors=sum(1 for r in group if r.failed),
                p50_ms=round(percentile(latencies, 0.50), 1),
                p95_ms=round(percentile(latencies, 0.95), 1),
                max_ms=round(max(latencies, default=0.0), 1),
            )
        )
    return buckets
