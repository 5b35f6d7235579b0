"""The order ledger: every order the storefront acknowledged, as the client saw it.

The ledger is the client's proof. After a fault the drill asks the storefront's
``POST /audit`` which of these orders exist: an acknowledged order the database lacks
is *lost*, a key with more than one order is a *duplicate*, and units sold beyond a
product's initial stock are *oversold*.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from peakready.load.records import read_jsonl, run_files

LEDGER_FILE = "ledger.jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    """One acknowledged order: its idempotency key and what the storefront answered."""

    key: str
    order_id: int
    product_id: int
    quantity: int
    acked_at: float  # epoch seconds when the 201/200 arrived
    status: int = 201

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LedgerWriter:
    """Appends entries, flushed and synced: an ack that is not on disk is not an ack."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def append(self, entry: LedgerEntry) -> None:
        self._file.write(json.dumps(entry.as_dict(), separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def run_ledger(run_dir: Path) -> list[LedgerEntry]:
    """The ledger of a run: the generator's own and its workers' shards, merged."""
    return [e for path in run_files(run_dir, LEDGER_FILE) for e in read_ledger(path)]


def read_ledger(path: Path) -> list[LedgerEntry]:
    fields = LedgerEntry.__dataclass_fields__
    return [
        LedgerEntry(**{k: v for k, v in row.items() if k in fields})
        for row in read_jsonl(path)
        if {"key", "order_id", "product_id", "quantity", "acked_at"} <= row.keys()
    ]


@dataclass
class LedgerCheck:
    """The ledger compared with the database (through ``POST /audit``)."""

    acked_orders: int = 0
    lost_orders: int = 0
    duplicate_orders: int = 0
    oversold_units: int = 0
    mismatched_orders: int = 0  # exists, but another product/quantity than acknowledged
    lost_keys: list[str] = field(default_factory=list)
    duplicate_keys: list[str] = field(default_factory=list)
    oversold_products: list[int] = field(default_factory=list)
    #: The back office's side, when the stack has an order pipeline.
    delivery: DeliveryCheck | None = None

    @property
    def ok(self) -> bool:
        return (
            not (self.lost_orders or self.duplicate_orders or self.oversold_units)
            and not self.mismatched_orders
            and (self.delivery is None or self.delivery.ok)
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        for key in ("lost_keys", "duplicate_keys"):
            data[key] = data[key][:20]  # enough to investigate, small enough to read
        if self.delivery is not None:
            data["delivery"] = self.delivery.as_dict()
        return data


@dataclass
class DeliveryCheck:
    """The acknowledged orders compared with the back office (its ``POST /audit``):
    each delivered exactly once, the outbox drained, every dead letter explained."""

    delivered_orders: int = 0
    missing_deliveries: int = 0
    applied_twice: int = 0
    outbox_pending: int = 0
    #: Messages in the dead-letter queue, and how many of them carry no recorded reason.
    dead_letters: int = 0
    unexplained_dead_letters: int = 0
    #: Seconds from the start of the wait (or the consumers' restart) until drained.
    drain_s: float | None = None
    missing_ids: list[int] = field(default_factory=list)
    twice_ids: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # the recorded dead letters' reasons

    @property
    def ok(self) -> bool:
        return not (
            self.missing_deliveries
            or self.applied_twice
            or self.outbox_pending
            or self.unexplained_dead_letters
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        for key in ("missing_ids", "twice_ids", "reasons"):
            data[key] = data[key][:20]
        return data


def compare_deliveries(
    entries: Iterable[LedgerEntry], backoffice: Mapping[str, Any], outbox_pending: int
) -> DeliveryCheck:
    """Compare acknowledged orders with the back office's audit answer.

    ``backoffice["orders"]`` maps each order id (a string) to ``{"applied_count", …}`` or
    ``None``; ``dead_letter_messages`` counts the dead-letter queue and
    ``dead_letters_recorded`` the dead letters the workers recorded with a reason.
    """
    ids = sorted({entry.order_id for entry in entries})
    found = backoffice.get("orders") or {}
    check = DeliveryCheck(outbox_pending=outbox_pending)
    for order_id in ids:
        row = found.get(str(order_id))
        if not row:
            check.missing_deliveries += 1
            check.missing_ids.append(order_id)
            continue
        check.delivered_orders += 1
        if int(row.get("applied_count", 1)) > 1:
            check.applied_twice += int(row["applied_count"]) - 1
            check.twice_ids.append(order_id)
    queued = backoffice.get("dead_letter_messages")
    recorded = int(backoffice.get("dead_letters_recorded") or 0)
    check.dead_letters = int(queued or 0)
    check.unexplained_dead_letters = max(0, check.dead_letters - recorded)
    check.reasons = [str(d.get("reason")) for d in backoffice.get("dead_letters") or []]
    return check


def compare(entries: Iterable[LedgerEntry], audit: Mapping[str, Any]) -> LedgerCheck:
    """Compare acknowledged orders with an audit answer (internals.md, ``POST /audit``).

    ``audit["orders"]`` maps each key to the order found or ``None``;
    ``audit["orders_per_key"]`` counts orders per key; ``audit["products"]`` lists
    ``{"id", "stock", "initial_stock", "sold"}``.
    """
    acked: dict[str, LedgerEntry] = {}
    for entry in entries:
        acked.setdefault(entry.key, entry)
    orders = audit.get("orders") or {}
    per_key = audit.get("orders_per_key") or {}
    check = LedgerCheck(acked_orders=len(acked))
    for key, entry in acked.items():
        found = orders.get(key)
        if not found:
            check.lost_orders += 1
            check.lost_keys.append(key)
            continue
        if (
            int(found.get("id", -1)) != entry.order_id
            or int(found.get("product_id", -1)) != entry.product_id
            or int(found.get("quantity", -1)) != entry.quantity
        ):
            check.mismatched_orders += 1
        count = int(per_key.get(key, 1))
        if count > 1:
            check.duplicate_orders += count - 1
            check.duplicate_keys.append(key)
    for product in audit.get("products") or []:
        initial = int(product.get("initial_stock", 0))
        sold = int(product.get("sold", 0))
        stock = int(product.get("stock", 0))
        # Units sold beyond what existed: either more sold than the initial stock, or a
        # stock that was not decremented for some orders (stock + sold > initial), so
        # that more can still be sold than exists.
        over = max(stock + sold - initial, sold - initial, -stock, 0)
        if over > 0:
            check.oversold_units += over
            check.oversold_products.append(int(product.get("id", -1)))
    return check
