"""How a drill names what failed in a chaos journal."""

from __future__ import annotations

from peakready.drill.runner import hypothesis_missed


def probe(name: str, met: bool) -> dict[str, object]:
    return {"activity": {"name": name}, "status": "succeeded", "tolerance_met": met}


def test_a_steady_state_not_met_names_each_probe_out_of_tolerance() -> None:
    after = {
        "steady_state_met": False,
        "probes": [probe("endpoint-serving", True), probe("app-group-at-desired", False)],
    }
    assert hypothesis_missed(after) == (
        "steady state not met after the method: app-group-at-desired"
    )


def test_a_hypothesis_that_never_ran_says_so_without_names() -> None:
    assert hypothesis_missed({}) == "steady state not met after the method"


def test_a_probe_that_raised_is_named_with_its_error() -> None:
    raised = probe("ledger-consistent", False) | {
        "status": "failed",
        "exception": ["Traceback …\n", "ActivityFailed: 2 orders lost\n"],
    }
    assert hypothesis_missed({"probes": [raised]}) == (
        "steady state not met after the method: ledger-consistent (ActivityFailed: 2 orders lost)"
    )
