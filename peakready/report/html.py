"""``report.html``: one readable page per drill, agreeing with ``summary.json``."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from peakready.report.backup import backup_html
from peakready.report.cells import cell
from peakready.report.summary import DrillResult, ScenarioResult

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.passed { color: #17692f; font-weight: bold; }
.failed, .aborted { color: #b00020; font-weight: bold; }
.bad { background: #fde8e8; } img { max-width: 100%; border: 1px solid #ddd; }
"""


def _row(label: str, value: Any, objective: Any = None, bad: bool = False) -> str:
    cls = ' class="bad"' if bad else ""
    return f"<tr{cls}><td>{escape(label)}</td><td>{cell(value)}</td><td>{cell(objective)}</td></tr>"


def _scenario(s: ScenarioResult) -> str:
    over_rto = s.rto_s is not None and s.rto_objective_s is not None and s.rto_s > s.rto_objective_s
    allowed = s.max_failed_requests
    rows = [
        _row(
            "RTO (s)", s.rto_s, f"≤ {s.rto_objective_s:g}" if s.rto_objective_s else None, over_rto
        ),
        _row("requests", s.requests),
        _row(
            "failed requests",
            s.failed_requests,
            f"≤ {allowed}" if allowed is not None else None,
            allowed is not None and s.failed_requests > allowed,
        ),
        _row("acknowledged orders", s.acked_orders),
        _row("lost orders", s.lost_orders, 0, s.lost_orders > 0),
        _row("duplicate orders", s.duplicate_orders, 0, s.duplicate_orders > 0),
        _row("oversold units", s.oversold_units, 0, s.oversold_units > 0),
        _row("steady state after", s.steady_state_after, True, not s.steady_state_after),
        _row("duration (s)", round(s.duration_s, 1)),
    ]
    extra = s.extra
    labels = {
        "failed_orders": "failed order attempts",
        "baseline_failed_requests": "failed requests before the fault (baseline)",
        "read_p95_ms": "read latency p95 after the fault (ms)",
        "cache_failover_s": "cache failover (s)",
        "stale_primary_ok": "stale primary refused writes",
    }
    rows += [_row(label, extra[key]) for key, label in labels.items() if extra.get(key) is not None]
    peak = s.peak or {}
    for name in peak.get("offered") or {}:
        rows.append(
            _row(
                f"{name}: offered / served / shed / timed out, p50 / p99 ms",
                f"{peak['offered'][name]} / {peak['served'][name]} / {peak['shed'][name]} / "
                f"{peak['timed_out'][name]}, {peak['p50_ms'][name]:g} / {peak['p99_ms'][name]:g}",
            )
        )
    peak_labels = {
        "order_goodput": "order goodput",
        "shed_p99_ms": "shed answers p99 (ms)",
        "scale_out_s": "scale-out reaction (s)",
        "max_instances": "instances in service, most",
        "units_on_sale": "flash sale: units on sale",
        "sold_units": "flash sale: units sold",
        "goodput_recovered_s": "order goodput back after the fault (s)",
        "instances_after_fault": "instances in service after the fault",
        "instances_needed": "instances the peak needs",
    }
    rows += [
        _row(label, peak[key]) for key, label in peak_labels.items() if peak.get(key) is not None
    ]
    reasons = "".join(f"<li>{escape(r)}</li>" for r in s.reasons)
    image = (
        f'<p><img src="{escape(s.timeline)}" alt="timeline of {escape(s.name)}"></p>'
        if s.timeline
        else ""
    )
    journal = f'<a href="{escape(s.journal)}">journal</a>' if s.journal else ""
    return (
        f'<section id="{escape(s.name)}"><h2>{escape(s.name)} — '
        f'<span class="{escape(s.status)}">{escape(s.status)}</span></h2>'
        f"<table><tr><th>figure</th><th>measured</th><th>objective</th></tr>{''.join(rows)}</table>"
        f"{'<ul>' + reasons + '</ul>' if reasons else ''}{image}<p>{journal}</p></section>"
    )


def detection_html(scenarios: list[ScenarioResult]) -> str:
    """The detection table: each alert a scenario raised, when (after the fault) it
    fired and resolved; the scenario's MTTD is its slowest expected alert."""
    rows = []
    for s in scenarios:
        if s.alerts is None:
            continue
        if not s.alerts:
            rows.append(f"<tr><td>{escape(s.name)}</td><td>none</td><td></td><td></td></tr>")
        for alert in s.alerts:
            rows.append(
                f"<tr><td>{escape(s.name)}</td><td>{escape(alert['name'])}</td>"
                f"<td>{cell(alert['fired_after_s'])}</td>"
                f"<td>{cell(alert['resolved_after_s'])}</td></tr>"
            )
    if not rows:
        return ""
    mttd = ", ".join(
        f"{escape(s.name)} {cell(s.mttd_s)} s" for s in scenarios if s.mttd_s is not None
    )
    return (
        "<h2>Detection</h2><table><tr><th>scenario</th><th>alert</th>"
        "<th>fired after the fault (s)</th><th>resolved after the fault (s)</th></tr>"
        f"{''.join(rows)}</table><p>MTTD (slowest expected alert): {mttd or 'none'}</p>"
    )


def render(result: DrillResult) -> str:
    summary = result.summary()
    verdict = "passed" if summary["passed"] else "failed"
    overview = "".join(
        f'<tr><td><a href="#{escape(s.name)}">{escape(s.name)}</a></td>'
        f'<td class="{escape(s.status)}">{escape(s.status)}</td><td>{cell(s.rto_s)}</td>'
        f"<td>{s.requests}</td><td>{s.failed_requests}</td><td>{s.acked_orders}</td>"
        f"<td>{s.lost_orders}</td><td>{s.duplicate_orders}</td><td>{s.oversold_units}</td></tr>"
        for s in result.scenarios
    )
    dry = " (dry run: probes only)" if result.dry_run else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>peakready drill — {escape(result.stack)} on {escape(result.target)}</title>
<style>{_STYLE}</style></head><body>
<h1>Drill of stack {escape(result.stack)} on {escape(result.target)}{dry}:
<span class="{verdict}">{verdict}</span></h1>
<p>Started {escape(result.started)}, finished {escape(result.finished)}.</p>
<table><tr><th>scenario</th><th>status</th><th>RTO (s)</th><th>requests</th><th>failed</th>
<th>acked orders</th><th>lost</th><th>duplicate</th><th>oversold</th></tr>{overview}</table>
{detection_html(result.scenarios)}
{"".join(_scenario(s) for s in result.scenarios)}
{backup_html(result.backup_detail or result.backup)}
</body></html>
"""


def write(result: DrillResult, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(result), encoding="utf-8")
    return out
