"""AWS-only actions: what the target-neutral activities cannot express.

The faults themselves (``kill_app_instance``, ``power_off_az``…) are target-neutral
activities of the tier modules; they reach AWS through :class:`AwsDriver`.
"""

from __future__ import annotations

from chaoslib.types import Configuration, Secrets

from peakready.targets.aws.driver import AwsDriver

__all__ = ["stop_az_power_experiments"]


def stop_az_power_experiments(
    az: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> list[str]:
    """Stop the AWS FIS power-interruption experiments peakready started on this stack
    (only those of ``az`` when given), wait until they have ended and delete their
    templates. Returns the ids of the experiments stopped (empty when none ran).
    Unlike the target-neutral ``restore``, it does not wait for the tiers to recover."""
    driver = AwsDriver(configuration, secrets)
    if az is not None:
        driver.check_az(az)
    return driver.stop_fault_experiments(az)
