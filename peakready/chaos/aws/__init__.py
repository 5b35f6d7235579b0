"""The AWS target: a fault driver built on chaostoolkit-aws and AWS FIS, and a few
AWS-only activities (``peakready.chaos.aws.actions`` / ``.probes``)."""

from __future__ import annotations

__all__: list[str] = []
