"""Drill reports: ``summary.json`` (DESIGN §7), ``report.html`` and PNG timelines."""
