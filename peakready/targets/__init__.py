"""Where drills act: the ``Driver`` interface, the lab and AWS drivers, one factory.

Drill, backup, bench and chaos reach a target only through :func:`get_driver`.
"""

from peakready.targets.base import Driver
from peakready.targets.factory import TARGETS, get_driver

__all__ = ["TARGETS", "Driver", "get_driver"]
