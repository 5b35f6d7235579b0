"""PNG timeline of one scenario: throughput, errors and latency, fault and recovery marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from peakready.load.records import RequestRecord, timeline


def plot(
    records: Sequence[RequestRecord],
    events: Sequence[dict[str, Any]],
    title: str,
    out: Path,
    rto_s: float | None = None,
    step: float = 1.0,
) -> Path:
    """Write the timeline of ``records`` to ``out`` (PNG) and return ``out``."""
    origin = records[0].t0 if records else 0.0
    buckets = timeline(records, origin, step)
    xs = [b.t for b in buckets]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    top.plot(xs, [b.requests / step for b in buckets], color="tab:blue", label="requests/s")
    top.set_ylabel("requests/s")
    top.set_ylim(bottom=0)
    middle.bar(xs, [b.errors for b in buckets], width=step * 0.9, color="tab:red", align="edge")
    middle.set_ylabel(f"errors per {step:g} s")
    bottom.plot(xs, [b.p50_ms for b in buckets], color="tab:green", label="p50")
    bottom.plot(xs, [b.p95_ms for b in buckets], color="tab:orange", label="p95")
    bottom.set_ylabel("latency (ms)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("seconds since load start")
    bottom.legend(loc="upper right")
    faults = [float(e["at"]) - origin for e in events if e.get("type") == "fault"]
    for axis in (top, middle, bottom):
        for index, at in enumerate(faults):
            axis.axvline(at, color="red", linestyle="--", label="fault" if index == 0 else None)
        if faults and rto_s is not None:
            axis.axvline(faults[0] + rto_s, color="green", linestyle="--", label="recovered")
    mark_alerts(top, events, origin)
    top.legend(loc="upper right")
    recovered = f", recovered after {rto_s:.1f} s" if rto_s is not None else ""
    fig.suptitle(f"{title}{recovered}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def mark_alerts(axis: Any, events: Sequence[dict[str, Any]], origin: float) -> None:
    """Shade each alert (events of ``"type": "alert"``) from firing to resolution on
    ``axis``, its name at the top; one still firing runs to the plot's right edge."""
    alerts = [e for e in events if e.get("type") == "alert"]
    if not alerts:
        return
    right = axis.get_xlim()[1]
    top = axis.get_ylim()[1]
    for index, alert in enumerate(alerts):
        start = float(alert["at"]) - origin
        end = float(alert["until"]) - origin if alert.get("until") else right
        axis.axvspan(
            start, end, color="tab:purple", alpha=0.12, label="alert firing" if index == 0 else None
        )
        axis.text(
            start,
            top * (0.95 - 0.08 * (index % 4)),
            f" {alert['name']}",
            fontsize="x-small",
            color="tab:purple",
            va="top",
        )
