"""``peakready drill``: chaos scenarios with load flowing, the backup drill, the report."""

from peakready.drill.suite import INTERRUPTED, run

__all__ = ["INTERRUPTED", "run"]
