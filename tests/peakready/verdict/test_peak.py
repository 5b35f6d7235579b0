"""The peak verdict: per-class figures from records, and rules that fail for the right reason."""

from __future__ import annotations

import pytest

from peakready.load.records import RequestRecord
from peakready.topology import Slo
from peakready.verdict.peak import judge, measure

SLO = Slo(order_p99_ms=250, browse_p99_ms=500, min_order_goodput=0.95)


def rec(t: float, kind: str, status: int, ms: float = 10.0, attempt: int = 1) -> RequestRecord:
    ok = 200 <= status < 300 or (kind in ("order", "hot_order") and status == 409)
    return RequestRecord(t, t + ms / 1000, kind, status, ok, "" if status else "timeout", attempt)


def steady(seconds: int, orders_ok: bool = True, start: float = 100.0) -> list[RequestRecord]:
    """Each second: 2 orders, 8 product reads, 2 searches; all served unless not."""
    out = []
    for s in range(seconds):
        t = start + s
        out += [rec(t, "order", 201 if orders_ok else 503, 20) for _ in range(2)]
        out += [rec(t + 0.1, "product", 200, 5) for _ in range(8)]
        out += [rec(t + 0.2, "search", 200, 8) for _ in range(2)]
    return out


SCALED = [
    {"event": "in_service", "at": 90.0, "in_service": 3, "target": 3.0},
    {"event": "scale", "at": 104.0, "desired": 5, "previous": 3},
    {"event": "in_service", "at": 106.5, "in_service": 5, "target": 3.0},
]


def test_figures_per_class_count_arrivals_once_and_retries_as_answers() -> None:
    records = steady(10)
    records += [rec(111, "order", 503, 2), rec(111.3, "order", 201, 30, attempt=2)]
    records += [rec(111, "product", 503, 3), rec(111, "search", 429, 2), rec(111, "search", 0)]
    figures = measure(records, [], SCALED, SLO)
    assert figures.offered == {"order": 21, "browse": 81, "search": 22}
    assert figures.served == {"order": 21, "browse": 80, "search": 20}
    assert figures.shed == {"order": 1, "browse": 1, "search": 1}
    assert figures.timed_out == {"order": 0, "browse": 0, "search": 1}
    assert figures.order_goodput == 1.0
    assert figures.p99_ms["order"] == pytest.approx(30.0)
    assert figures.shed_p99_ms == pytest.approx(3.0)


def test_scale_out_reaction_runs_from_the_load_crossing_the_target_to_a_new_instance() -> None:
    records = steady(4) + steady(6, start=104.0) * 2  # 12/s then 24/s
    figures = measure(records, [], SCALED, SLO)
    # 3 instances, target 3/s each: 12/s is 4 per instance, above it from the start
    assert figures.scale_out_s == pytest.approx(6.5)
    assert (figures.min_instances, figures.max_instances) == (3, 5)
    assert figures.instances == [[0.0, 3], [6.5, 5]]


def test_a_surge_that_starves_orders_fails_on_goodput() -> None:
    records = steady(10) + steady(10, orders_ok=False, start=110.0)
    figures = measure(records, [], SCALED, SLO)
    assert figures.order_goodput == pytest.approx(0.5)
    reasons = judge("peak-surge", figures, SLO, 30)
    assert any("order goodput 50.0%" in r and "orders starved" in r for r in reasons)


def test_slow_orders_break_the_objective() -> None:
    records = steady(10) + [rec(105, "order", 201, 900)] * 5
    reasons = judge("peak-surge", measure(records, [], SCALED, SLO), SLO, 30)
    assert reasons == ["order p99 900 ms exceeds the objective 250 ms"]


def test_a_surge_the_tier_did_not_scale_out_for_fails_and_says_why() -> None:
    flat = [{"event": "in_service", "at": 90.0, "in_service": 3, "target": 3.0}]
    figures = measure(steady(10), [], flat, SLO)
    assert figures.scale_out_s is None
    (reason,) = judge("peak-surge", figures, SLO, 30, scaled=False)
    assert reason == (
        "the tier did not scale out: 3 instances in service throughout (autoscaling is off)"
    )
    assert judge("peak-surge", measure(steady(10), [], SCALED, SLO), SLO, 30) == []


def flash_events(sold: int) -> list[dict[str, object]]:
    return [
        {"type": "info", "event": "flash_sale", "at": 100, "units": 100, "sold_before": 15},
        {"type": "info", "event": "flash_sale_sold", "at": 120, "sold": 15 + sold},
    ]


def test_a_flash_sale_must_sell_exactly_the_units_and_answer_every_buyer() -> None:
    buyers = [rec(105, "hot_order", 201, 40) for _ in range(100)]
    buyers += [rec(105.5, "hot_order", 409, 5) for _ in range(1900)]
    ok = measure(steady(10) + buyers, flash_events(100), SCALED, SLO)
    assert ok.offered["hot_order"] == ok.served["hot_order"] == 2000
    assert judge("flash-sale", ok, SLO, 30) == []
    oversold = measure(steady(10) + buyers, flash_events(101), SCALED, SLO)
    assert judge("flash-sale", oversold, SLO, 30) == [
        "flash sale: 101 units sold of 100 on sale (exactly 100)"
    ]
    unanswered = buyers[:-10] + [rec(105.5, "hot_order", 0, 4000) for _ in range(10)]
    reasons = judge("flash-sale", measure(unanswered, flash_events(100), SCALED, SLO), SLO, 30)
    assert "flash sale: 10 of 2000 buyers got no definitive answer (201 or 409)" in reasons
    assert "flash sale: 10 buyer attempts timed out" in reasons


Run = tuple[list[RequestRecord], list[dict[str, object]], list[dict[str, object]]]


def az_loss_run(remaining: int) -> Run:
    """Orders fail for 5 s after the fault, then flow; ``remaining`` instances serve."""
    records = steady(5) + steady(5, orders_ok=False, start=105.0) + steady(10, start=110.0)
    events: list[dict[str, object]] = [
        {
            "type": "info",
            "event": "peak_profile",
            "at": 99,
            "per_instance_s": 4.0,
            "peak_per_s": 12.0,
        },
        {"type": "fault", "event": "power_off_az", "at": 105.0, "az": "eu-central-1a"},
    ]
    scaling = [
        {"event": "in_service", "at": 90.0, "in_service": 6, "target": 3.0},
        {"event": "in_service", "at": 106.0, "in_service": remaining, "target": 3.0},
    ]
    return records, events, scaling


def test_az_loss_at_peak_measures_goodput_recovery_and_the_instances_left() -> None:
    records, events, scaling = az_loss_run(remaining=4)
    figures = measure(records, events, scaling, SLO, headroom=0.3, rto_s=30)
    assert figures.goodput_recovered_s == pytest.approx(5.0, abs=0.5)  # 0.5 s steps
    assert figures.instances_after_fault == 4
    assert figures.instances_needed == 4  # ceil(12 x 1.3 / 4)
    claim = (True, "peakready plan: 4 app instances after losing an AZ, 3 needed")
    assert judge("az-loss-at-peak", figures, SLO, 30, plan_claim=claim) == []
    assert judge("az-loss-at-peak", figures, SLO, 4.0, plan_claim=claim) == [
        "order goodput back to 95% after 4.5 s, objective 4 s"
    ]


def test_a_plan_that_claims_stability_the_rehearsal_refutes_fails_with_both_figures() -> None:
    records, events, scaling = az_loss_run(remaining=2)
    figures = measure(records, events, scaling, SLO, headroom=0.3, rto_s=30)
    claim = (True, "peakready plan: 2 app instances after losing an AZ, 1 needed")
    (reason,) = judge("az-loss-at-peak", figures, SLO, 30, plan_claim=claim)
    assert "the plan says statically stable (peakready plan: 2 app instances" in reason
    assert "2 app instances in service after losing the AZ, 4 needed" in reason
    # a plan that said "not stable" is not contradicted by a short tier
    assert judge("az-loss-at-peak", figures, SLO, 30, plan_claim=(False, "")) == []
