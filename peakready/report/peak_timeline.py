"""PNG timeline of a peak rehearsal: per class offered, served and shed, instances in
service, p99 per class against the objectives, and the fault."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from peakready.load.records import RequestRecord, percentile
from peakready.report.timeline import mark_alerts
from peakready.topology import Slo
from peakready.verdict.peak import KIND_CLASS, SHED_STATUSES

COLOURS = {
    "order": "tab:green",
    "hot_order": "tab:purple",
    "browse": "tab:blue",
    "search": "tab:orange",
}


def plot(
    records: Sequence[RequestRecord],
    events: Sequence[dict[str, Any]],
    instances: Sequence[Sequence[float]],
    slo: Slo,
    title: str,
    out: Path,
    step: float = 1.0,
) -> Path:
    """Write the peak timeline of ``records`` to ``out`` (PNG) and return ``out``.

    ``instances`` is ``[[seconds since the first record, in service], …]``."""
    origin = records[0].t0 if records else 0.0
    end = max((r.t1 for r in records), default=origin)
    slots = int((end - origin) // step) + 1
    xs = [i * step for i in range(slots)]
    classes = [c for c in COLOURS if any(KIND_CLASS.get(r.kind) == c for r in records)]
    offered = {c: [0] * slots for c in classes}
    served = {c: [0] * slots for c in classes}
    shed = {c: [0] * slots for c in classes}
    latency: dict[str, list[list[float]]] = {c: [[] for _ in range(slots)] for c in classes}
    for record in records:
        name = KIND_CLASS.get(record.kind, "browse")
        i = min(int((record.t0 - origin) // step), slots - 1)
        offered[name][i] += record.attempt == 1
        served[name][i] += record.ok
        shed[name][i] += record.status in SHED_STATUSES
        if record.ok or (name in ("order", "hot_order") and record.status):
            latency[name][i].append(record.latency * 1000)

    fig, (rates, sheds, group, p99) = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    for name in classes:
        colour = COLOURS[name]
        rates.plot(xs, [v / step for v in offered[name]], color=colour, linestyle="--")
        rates.plot(xs, [v / step for v in served[name]], color=colour, label=f"{name}")
        sheds.plot(xs, [v / step for v in shed[name]], color=colour, label=name)
        p99.plot(
            xs,
            [percentile(values, 0.99) if values else float("nan") for values in latency[name]],
            color=colour,
            label=name,
        )
    rates.set_ylabel("requests/s\n(dashed: offered)")
    rates.set_ylim(bottom=0)
    rates.legend(loc="upper left", fontsize="small")
    sheds.set_ylabel("shed (503/429)/s")
    sheds.set_ylim(bottom=0)
    if instances:
        xs_group = [float(point[0]) for point in instances] + [end - origin]
        ys_group = [float(point[1]) for point in instances] + [float(instances[-1][1])]
        group.step(xs_group, ys_group, where="post", color="black")
    group.set_ylabel("instances\nin service")
    group.set_ylim(bottom=0)
    p99.axhline(slo.order_p99_ms, color=COLOURS["order"], linestyle=":", label="order objective")
    p99.axhline(slo.browse_p99_ms, color=COLOURS["browse"], linestyle=":", label="browse objective")
    p99.set_ylabel("p99 (ms)")
    p99.set_ylim(bottom=0)
    p99.set_xlabel("seconds since load start")
    p99.legend(loc="upper left", fontsize="small", ncol=3)
    faults = [float(e["at"]) - origin for e in events if e.get("type") == "fault"]
    for axis in (rates, sheds, group, p99):
        for index, at in enumerate(faults):
            axis.axvline(at, color="red", linestyle="--", label="fault" if index == 0 else None)
    mark_alerts(rates, events, origin)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
