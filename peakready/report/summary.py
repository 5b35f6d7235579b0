"""``summary.json`` exactly as DESIGN §7, and the richer detail the HTML report shows."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: The keys of one scenario entry, in DESIGN §7 order.
SCENARIO_KEYS = (
    "name",
    "status",
    "rto_s",
    "requests",
    "failed_requests",
    "acked_orders",
    "lost_orders",
    "duplicate_orders",
    "oversold_units",
    "steady_state_after",
    "journal",
)
#: Added to a peak scenario's entry (DESIGN §7: fields are only ever added).
PEAK_KEYS = (
    "offered",
    "served",
    "shed",
    "order_goodput",
    "p50_ms",
    "p99_ms",
    "instances",
    "scale_out_s",
)
#: Added to every scenario's entry: the alerts it raised, and the slowest expected
#: alert's time to detect (``peakready.monitoring.detection``).
DETECTION_KEYS = ("alerts", "mttd_s")
#: Added when the stack has an order pipeline: the back office's side of the ledger.
PIPELINE_KEYS = ("delivered_orders", "missing_deliveries", "applied_twice", "drain_s")
BACKUP_KEYS = ("rto_s", "rpo_s", "verified_orders", "missing_orders")
STATUSES = ("passed", "failed", "aborted")


@dataclass
class ScenarioResult:
    """One scenario's outcome: the §7 figures plus what the HTML report explains."""

    name: str
    status: str = "aborted"
    rto_s: float | None = None
    requests: int = 0
    failed_requests: int = 0
    acked_orders: int = 0
    lost_orders: int = 0
    duplicate_orders: int = 0
    oversold_units: int = 0
    steady_state_after: bool = False
    journal: str | None = None
    # detail (report.html, details.json)
    reasons: list[str] = field(default_factory=list)
    rto_objective_s: float | None = None
    max_failed_requests: int | None = None
    timeline: str | None = None
    duration_s: float = 0.0
    peak: dict[str, Any] | None = None  # a peak rehearsal's figures (verdict.peak)
    alerts: list[dict[str, Any]] | None = None  # None: no monitoring was asked
    mttd_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, values: Mapping[str, Any]) -> None:
        """Take ``values`` (a verdict's figures, a ``details.json`` entry): each key that
        is a field of this result sets it; every other key goes to ``extra``."""
        names = {f.name for f in fields(self)} - {"extra"}
        for key, value in values.items():
            if key in names:
                setattr(self, key, value)
            else:
                self.extra[key] = value

    def entry(self) -> dict[str, Any]:
        """The DESIGN §7 entry: exactly these keys, in this order (a peak rehearsal's
        after them, then detection's)."""
        entry = {key: getattr(self, key) for key in SCENARIO_KEYS}
        if self.peak is not None:
            entry.update({key: self.peak.get(key) for key in PEAK_KEYS})
        entry.update({key: getattr(self, key) for key in DETECTION_KEYS})
        if self.extra.get("delivered_orders") is not None:
            entry.update({key: self.extra.get(key) for key in PIPELINE_KEYS})
        return entry

    def detail(self) -> dict[str, Any]:
        return {
            **self.entry(),
            "reasons": self.reasons,
            "rto_objective_s": self.rto_objective_s,
            "max_failed_requests": self.max_failed_requests,
            "timeline": self.timeline,
            "duration_s": self.duration_s,
            **({"peak": self.peak} if self.peak is not None else {}),
            **self.extra,
        }


@dataclass
class DrillResult:
    target: str
    stack: str
    started: str
    finished: str = ""
    dry_run: bool = False
    scenarios: list[ScenarioResult] = field(default_factory=list)
    backup: dict[str, Any] | None = None
    backup_detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.scenarios) and all(s.status == "passed" for s in self.scenarios)

    def summary(self) -> dict[str, Any]:
        """``summary.json`` exactly as DESIGN §7."""
        data: dict[str, Any] = {
            "target": self.target,
            "stack": self.stack,
            "started": self.started,
            "finished": self.finished,
            "passed": self.passed,
            "scenarios": [s.entry() for s in self.scenarios],
        }
        if self.backup is not None:
            data["backup"] = {key: self.backup.get(key) for key in BACKUP_KEYS}
        return data

    def details(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "dry_run": self.dry_run,
            "scenarios": [s.detail() for s in self.scenarios],
            "backup": self.backup_detail or self.backup,
        }


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (tmp + rename), so readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def validate(summary: dict[str, Any]) -> list[str]:
    """Where ``summary`` departs from DESIGN §7 (used by tests and by the drill itself)."""
    problems = []
    top = ["target", "stack", "started", "finished", "passed", "scenarios"]
    missing = [k for k in top if k not in summary]
    problems += [f"missing key {k}" for k in missing]
    for entry in summary.get("scenarios", []):
        bases = (SCENARIO_KEYS + DETECTION_KEYS, SCENARIO_KEYS + PEAK_KEYS + DETECTION_KEYS)
        shapes = bases + tuple(base + PIPELINE_KEYS for base in bases)
        if tuple(entry) not in shapes:
            problems.append(f"scenario {entry.get('name')}: keys {list(entry)}")
        if entry.get("status") not in STATUSES:
            problems.append(f"scenario {entry.get('name')}: status {entry.get('status')!r}")
    if "backup" in summary and tuple(summary["backup"]) != BACKUP_KEYS:
        problems.append(f"backup: keys {list(summary['backup'])}")
    expected = bool(summary.get("scenarios")) and all(
        e.get("status") == "passed" for e in summary.get("scenarios", [])
    )
    if summary.get("passed") != expected:
        problems.append(f"passed is {summary.get('passed')}, scenarios say {expected}")
    return problems
