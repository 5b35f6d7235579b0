"""Monitoring: the alert catalogue and the drills ' view of it."""
