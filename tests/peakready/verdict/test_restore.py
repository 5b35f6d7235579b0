"""The restore verdict that the lab's and the AWS restore drills share."""

from __future__ import annotations

from peakready.backup.ledger import LedgerEntry
from peakready.topology import Objective
from peakready.verdict.restore import judge_restore, policy_reasons

TARGET = 1000.0


def entry(n: int, acked: float | None, sent: float = 990.0) -> LedgerEntry:
    return LedgerEntry(
        key=f"k{n}",
        batch="x",
        product_id=1,
        quantity=1,
        sent=sent,
        acked=acked,
        order_id=n if acked is not None else None,
    )


BEFORE = [entry(1, 995.0), entry(2, 998.0), entry(3, 999.0)]
AFTER = [entry(9, 1002.0, sent=1001.0)]
FOUND = {f"k{n}": (n, 1, 1) for n in (1, 2, 3)}
PRODUCTS = [{"id": 1, "stock": 97, "initial_stock": 100, "sold": 3}]


def test_a_restore_holding_every_acknowledged_order_passes() -> None:
    verdict = judge_restore(BEFORE + AFTER, FOUND, PRODUCTS, TARGET, exact_target=True)
    assert (verdict.verified_orders, verdict.missing_orders, verdict.rpo_s) == (3, 0, 0.0)
    assert verdict.reasons == []


def test_a_missing_order_is_lost_data_counted_back_to_its_acknowledgement() -> None:
    found = {k: v for k, v in FOUND.items() if k != "k2"}
    verdict = judge_restore(BEFORE, found, PRODUCTS[:0], TARGET, exact_target=True)
    assert (verdict.verified_orders, verdict.missing_orders, verdict.rpo_s) == (2, 1, 2.0)
    assert verdict.reasons == [
        "1 of 3 acknowledged orders missing at the recovery target (first: k2, RPO 2.0 s)"
    ]


def test_a_changed_order_counts_as_missing() -> None:
    found = {**FOUND, "k3": (3, 1, 2)}
    assert judge_restore(BEFORE, found, [], TARGET, exact_target=True).missing_orders == 1


def test_an_order_sent_after_the_target_fails_only_an_exact_restore() -> None:
    found = {**FOUND, "k9": (9, 1, 1)}
    exact = judge_restore(BEFORE + AFTER, found, [], TARGET, exact_target=True)
    assert exact.reasons == ["1 orders placed after the recovery target were restored"]
    assert judge_restore(BEFORE + AFTER, found, [], TARGET, exact_target=False).reasons == []


def test_stock_that_disagrees_with_its_orders_fails() -> None:
    products = [{"id": 1, "stock": 98, "initial_stock": 100, "sold": 3}]
    verdict = judge_restore(BEFORE, FOUND, products, TARGET, exact_target=True)
    assert verdict.reasons == [
        "1 products whose stock disagrees with their orders (first: product 1)"
    ]


def test_an_unacknowledged_order_is_not_owed() -> None:
    verdict = judge_restore([*BEFORE, entry(4, None)], FOUND, [], TARGET, exact_target=True)
    assert verdict.missing_orders == 0


def test_a_restore_short_of_its_target_keeps_that_gap_as_rpo() -> None:
    verdict = judge_restore(BEFORE, FOUND, [], TARGET, exact_target=True, rpo_floor_s=4.5)
    assert verdict.rpo_s == 4.5


def test_policy_names_each_broken_objective() -> None:
    objective = Objective(rto_s=60, rpo_s=5)
    assert policy_reasons(30.0, 1.0, objective) == []
    assert policy_reasons(61.0, 6.0, objective) == [
        "RTO 61.0 s breaks the stack's policy of 60 s",
        "RPO 6.0 s breaks the stack's policy of 5 s",
    ]
