"""AWS-only activities (``peakready.chaos.aws.actions`` / ``.probes``); the AWS driver
they use lives with the other targets in ``peakready.targets.aws``."""

from __future__ import annotations

__all__: list[str] = []
