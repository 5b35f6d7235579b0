"""The backup drill's section of the HTML drill report: per-repository RTO and RPO.

``backup_html(summary)`` takes :meth:`peakready.backup.lab.BackupResult.summary` (the
``backup`` detail the drill report keeps) and returns one self-contained ``<section>``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from peakready.report.cells import cell

#: The ``backup`` figures of DESIGN §7 (the worst repository's).
SUMMARY_COLUMNS = (
    ("rto_s", "RTO s"),
    ("rpo_s", "RPO s"),
    ("verified_orders", "verified orders"),
    ("missing_orders", "missing orders"),
)
REPO_COLUMNS = (
    ("repo", "repository"),
    ("backup", "backup restored"),
    ("backup_type", "type"),
    ("rto_s", "RTO s"),
    ("rpo_s", "RPO s"),
    ("verified_orders", "verified"),
    ("missing_orders", "missing"),
    ("unexpected_orders", "after target"),
    ("restore_s", "restore s"),
    ("recovery_s", "WAL replay s"),
    ("verify_s", "verify s"),
    ("wal_segments_checked", "WAL segments"),
    ("passed", "passed"),
    ("reason", "reason"),
)
POLICY_COLUMNS = (
    ("repo", "repository"),
    ("backup_age_s", "newest backup age s"),
    ("recoverable_until", "recoverable until"),
    ("exposure_s", "exposure s"),
    ("rpo_s", "RPO objective s"),
    ("schedule", "schedule"),
    ("breach", "breach"),
    ("note", "note"),
)


def backup_html(summary: dict[str, Any] | None) -> str:
    """An HTML ``<section id="backup">`` for the drill report; empty without a summary."""
    if not summary:
        return ""
    verdict = "passed" if summary.get("passed") else "failed"
    head = (
        f'<section id="backup"><h2>Backup and restore — <span class="{verdict}">{verdict}</span>'
        "</h2>"
        f"<p>Recovery target {cell(summary.get('target'))}: "
        f"{cell(summary.get('orders_before_target'))} orders acknowledged before it must be "
        f"restored, {cell(summary.get('orders_after_target'))} placed after it must not.</p>"
    )
    overall = _table(SUMMARY_COLUMNS, [summary])
    parts = [
        head,
        overall,
        _table(REPO_COLUMNS, summary.get("repositories") or []),
        "<h3>RPO policy, as found</h3>",
        _table(POLICY_COLUMNS, summary.get("policy") or []),
    ]
    for name, title in (
        ("redis", "Cache snapshot restore"),
        ("search", "Search index rebuild"),
        ("backoffice", "Back-office database restore"),
    ):
        part = summary.get(name) or {}
        if part:
            rows = "".join(
                f"<tr><td>{escape(str(k))}</td><td>{cell(v)}</td></tr>" for k, v in part.items()
            )
            parts.append(f"<h3>{title}</h3><table>{rows}</table>")
    reasons = summary.get("reasons") or []
    if reasons:
        parts.append("<ul>" + "".join(f"<li>{escape(str(r))}</li>" for r in reasons) + "</ul>")
    return "".join(parts) + "</section>"


# private


def _table(columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    header = "".join(f"<th>{escape(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row.get(key))}</td>" for key, _ in columns) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{header}</tr>{body}</table>"
