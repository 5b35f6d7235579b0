"""`pulumi preview --policy-pack policypack`: the same policies the offline preview runs."""

import sys
from pathlib import Path

# The pack runs from this folder; make the checkout's `peakready` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from peakready.policy import POLICIES

PolicyPack(
    name="peakready",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
