from pathlib import Path
from typing import Any

from peakready.load.ledger import (
    LedgerEntry,
    LedgerWriter,
    compare,
    compare_deliveries,
    read_ledger,
)


def entry(key: str, order_id: int, product: int = 1, quantity: int = 1) -> LedgerEntry:
    return LedgerEntry(key, order_id, product, quantity, 1.0)


def audit_of(orders: dict[str, Any], per_key: dict[str, int] | None = None, products=None):
    return {
        "orders": orders,
        "orders_per_key": per_key or {k: int(v is not None) for k, v in orders.items()},
        "products": products or [],
    }


def order(order_id: int, product: int = 1, quantity: int = 1) -> dict[str, int]:
    return {"id": order_id, "product_id": product, "quantity": quantity}


def test_an_acknowledged_order_missing_from_the_database_is_lost() -> None:
    check = compare([entry("a", 1), entry("b", 2)], audit_of({"a": order(1), "b": None}))
    assert (check.acked_orders, check.lost_orders, check.lost_keys) == (2, 1, ["b"])
    assert not check.ok


def test_a_key_with_two_orders_counts_one_duplicate() -> None:
    check = compare([entry("a", 1)], audit_of({"a": order(1)}, per_key={"a": 2}))
    assert check.duplicate_orders == 1 and check.duplicate_keys == ["a"]
    assert not check.ok


def test_units_sold_beyond_the_initial_stock_are_oversold() -> None:
    products = [
        {"id": 1, "stock": 0, "initial_stock": 10, "sold": 12},
        {"id": 2, "stock": 5, "initial_stock": 10, "sold": 5},
    ]
    check = compare([], audit_of({}, products=products))
    assert check.oversold_units == 2 and check.oversold_products == [1]


def test_a_stock_not_decremented_for_an_order_counts_as_oversold() -> None:
    products = [{"id": 3, "stock": 10, "initial_stock": 10, "sold": 1}]
    assert compare([], audit_of({}, products=products)).oversold_units == 1


def test_an_order_stored_differently_from_its_acknowledgement_is_a_mismatch() -> None:
    check = compare([entry("a", 1, quantity=2)], audit_of({"a": order(1, quantity=1)}))
    assert check.mismatched_orders == 1 and not check.ok


def test_a_consistent_ledger_passes() -> None:
    products = [{"id": 1, "stock": 7, "initial_stock": 10, "sold": 3}]
    check = compare(
        [entry("a", 1, quantity=1), entry("b", 2, quantity=2)],
        audit_of({"a": order(1), "b": order(2, quantity=2)}, products=products),
    )
    assert check.ok and check.acked_orders == 2


def test_ledger_round_trip(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path / "ledger.jsonl")
    writer.append(entry("k1", 7, product=3, quantity=2))
    writer.close()
    assert read_ledger(tmp_path / "ledger.jsonl") == [entry("k1", 7, product=3, quantity=2)]


# the back office's side (compare_deliveries) -------------------------------------


def backoffice(orders: dict[str, Any], queued: int = 0, recorded: int = 0) -> dict[str, Any]:
    return {
        "orders": orders,
        "dead_letter_messages": queued,
        "dead_letters_recorded": recorded,
        "dead_letters": [{"reason": "order_id: expected an integer"}] * recorded,
    }


def applied(count: int = 1) -> dict[str, Any]:
    return {"applied_count": count, "applied_at": "2026-12-02T00:00:00+00:00"}


def test_every_acknowledged_order_applied_once_passes() -> None:
    check = compare_deliveries(
        [entry("a", 1), entry("b", 2)], backoffice({"1": applied(), "2": applied()}), 0
    )
    assert (check.delivered_orders, check.missing_deliveries, check.applied_twice) == (2, 0, 0)
    assert check.ok


def test_an_order_the_back_office_never_got_is_a_missing_delivery() -> None:
    check = compare_deliveries([entry("a", 1), entry("b", 2)], backoffice({"1": applied()}), 0)
    assert (check.missing_deliveries, check.missing_ids) == (1, [2])
    assert not check.ok


def test_an_order_shipped_twice_is_applied_twice() -> None:
    check = compare_deliveries([entry("a", 7)], backoffice({"7": applied(2)}), 0)
    assert (check.applied_twice, check.twice_ids) == (1, [7])
    assert not check.ok


def test_rows_left_in_the_outbox_fail_the_check() -> None:
    check = compare_deliveries([entry("a", 1)], backoffice({"1": applied()}), 3)
    assert check.outbox_pending == 3
    assert not check.ok


def test_dead_letters_pass_only_when_each_has_a_recorded_reason() -> None:
    explained = compare_deliveries([], backoffice({}, queued=2, recorded=2), 0)
    assert (explained.dead_letters, explained.unexplained_dead_letters) == (2, 0)
    assert explained.ok and explained.reasons == ["order_id: expected an integer"] * 2
    expired = compare_deliveries([], backoffice({}, queued=3, recorded=2), 0)
    assert expired.unexplained_dead_letters == 1
    assert not expired.ok


def test_a_failed_delivery_check_fails_the_whole_ledger() -> None:
    check = compare([entry("a", 1)], audit_of({"a": order(1)}))
    assert check.ok
    check.delivery = compare_deliveries([entry("a", 1)], backoffice({}), 0)
    assert not check.ok
    assert check.as_dict()["delivery"]["missing_ids"] == [1]
