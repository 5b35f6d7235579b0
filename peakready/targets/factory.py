"""One factory for the targets a drill can run against (as Patroni's ``get_dcs``).

The implementation is imported only when asked for: the lab driver needs no boto3,
and the AWS driver no lab.
"""

from __future__ import annotations

from typing import Any

from peakready.errors import PeakreadyError
from peakready.targets.base import Driver

TARGETS = ("lab", "aws")


def get_driver(
    target: str,
    stack: str,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> Driver:
    """The driver of ``target`` for ``stack``; ``PeakreadyError`` when it cannot be built.

    ``configuration``/``secrets`` are Chaos Toolkit's: when given, the AWS driver reads
    its region, role, stack and outputs file there, as chaostoolkit-aws does.
    """
    if target == "lab":
        from peakready.targets.lab import LabDriver  # lazy: see the module docstring

        return LabDriver(stack)
    if target == "aws":
        from peakready.targets.aws import AwsDriver  # lazy: boto3 and chaostoolkit-aws

        config = {"peakready_stack": stack} if configuration is None else configuration
        return AwsDriver(configuration=config, secrets=secrets)  # type: ignore[return-value]
    raise PeakreadyError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
