"""peakready's policy pack: resiliency and security invariants as pulumi-policy validations.

``POLICIES`` feeds both ``policypack/`` (``pulumi preview --policy-pack policypack``) and
the offline preview (:func:`peakready.policy.offline.evaluate`).
"""

from peakready.policy.offline import Violation, evaluate
from peakready.policy.rules import POLICIES

__all__ = ["POLICIES", "Violation", "evaluate"]
