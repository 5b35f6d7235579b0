"""``peakready preview``: the offline plan of a stack, its diff and its summary."""

from peakready.preview.build import baseline_from_ref, load_baseline, plan_stack, render, run

__all__ = ["baseline_from_ref", "load_baseline", "plan_stack", "render", "run"]
