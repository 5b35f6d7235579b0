"""The backup section of the HTML drill report."""

from __future__ import annotations

from peakready.report.backup import backup_html

SUMMARY = {
    "passed": False,
    "target": "2026-11-22 01:21:10.583750+00",
    "orders_before_target": 20,
    "orders_after_target": 5,
    "repositories": [
        {"repo": 1, "backup": "20261122-005638F", "rto_s": 7.932, "rpo_s": 0.0, "passed": True},
        {
            "repo": 2,
            "backup": "20261122-005650F",
            "rto_s": None,
            "passed": False,
            "reason": "WAL gap: 000000010000000000000005 <missing>",
        },
    ],
    "policy": [{"repo": 1, "backup_age_s": 12.5, "breach": None}],
    "redis": {"passed": True, "rto_s": 0.213},
    "search": {},
    "backoffice": {"passed": True, "verified_orders": 25, "missing_orders": 0, "rto_s": 6.471},
    "reasons": ["repo2: WAL gap: 000000010000000000000005 <missing>"],
}


def test_each_repository_gets_a_row_with_its_rto_and_rpo() -> None:
    html = backup_html(SUMMARY)
    assert html.startswith('<section id="backup"><h2>Backup and restore — ')
    assert '<span class="failed">failed</span>' in html
    assert "<td>1</td><td>20261122-005638F</td><td>—</td><td>7.93</td><td>0.00</td>" in html
    assert "<td>2</td><td>20261122-005650F</td><td>—</td><td>—</td>" in html
    assert "&lt;missing&gt;" in html and "<missing>" not in html  # escaped
    assert "<h3>Cache snapshot restore</h3>" in html
    assert "Search index rebuild" not in html  # empty part left out
    assert "<h3>Back-office database restore</h3>" in html
    assert "<td>verified_orders</td><td>25</td>" in html
    assert html.endswith("</ul></section>")


def test_no_summary_no_section() -> None:
    assert backup_html(None) == "" and backup_html({}) == ""
