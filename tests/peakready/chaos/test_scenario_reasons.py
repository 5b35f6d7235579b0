"""One verdict for a fault scenario: the stack's policy, or the model a caller gives."""

from __future__ import annotations

from peakready.chaos.verify.shared import scenario_reasons
from peakready.topology import Objective, Topology
from peakready.verdict.failover import Figures

LAB = {"peakready_target": "lab", "peakready_stack": "dev"}
RECOVERED = Figures(rto_s=5.0, fault_at=100.0, path="writes")


def test_the_configured_stack_judges_by_default() -> None:
    assert scenario_reasons("db-primary-loss", RECOVERED, LAB) == []


def test_a_given_model_judges_instead_of_the_stack_file() -> None:
    strict = Topology.load("dev").model_copy(
        update={"resiliency": {"db-primary-loss": Objective(rto_s=1.0, rpo_s=0)}}
    )
    assert scenario_reasons("db-primary-loss", RECOVERED, LAB, strict) == [
        "RTO 5.0 s exceeds the objective 1 s"
    ]
