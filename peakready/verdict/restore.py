"""The restore verdict, one for the lab's pgBackRest drill and the AWS restore drill.

A restore is proven only by counting what it holds against what was acknowledged
(LAB-NOTES): every order acknowledged at or before the recovery target must be there,
unchanged; with a restore that stops exactly at the target, no order sent after it may
be; and every product's stock must agree with its restored orders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from peakready.topology import Objective


class LedgerEntry(Protocol):
    """An order the drill placed (``peakready.backup.ledger.LedgerEntry``)."""

    key: str
    product_id: int
    quantity: int
    sent: float
    acked: float | None
    order_id: int | None

    @property
    def acknowledged(self) -> bool: ...


#: One restored order as read back: ``(id, product_id, quantity)``.
OrderRow = tuple[int, int, int]


@dataclass(frozen=True)
class RestoreVerdict:
    """What one restore holds of the ledger, and why that fails (None: it does not)."""

    verified_orders: int
    missing_orders: int
    unexpected_orders: int
    inconsistent_products: int
    #: Seconds of acknowledged orders lost: target - the first missing acknowledgement.
    rpo_s: float
    missing: str | None = None
    unexpected: str | None = None
    stock: str | None = None

    @property
    def reasons(self) -> list[str]:
        return [r for r in (self.missing, self.unexpected, self.stock) if r]


def judge_restore(
    entries: Sequence[LedgerEntry],
    found: Mapping[str, OrderRow],
    products: Sequence[Mapping[str, Any]],
    target_ts: float,
    *,
    exact_target: bool,
    rpo_floor_s: float = 0.0,
) -> RestoreVerdict:
    """Compare a restore with the ledger.

    ``entries``: the ledger (acknowledged or not); ``found``: the restored orders by
    idempotency key; ``products``: ``{"id", "stock", "initial_stock", "sold"}`` each.
    ``exact_target``: the restore stopped at ``target_ts``, so orders sent after it
    must be absent (a snapshot taken later may hold them). ``rpo_floor_s``: the RPO
    is at least this (a point-in-time restore short of its target lost that gap).
    """
    before = [e for e in entries if e.acknowledged and _acked(e) <= target_ts]
    after = [e for e in entries if e.sent > target_ts]
    missing = [e for e in before if found.get(e.key) != (e.order_id, e.product_id, e.quantity)]
    unexpected = [e for e in after if e.key in found] if exact_target else []
    inconsistent = [
        p for p in products if int(p["initial_stock"]) - int(p["stock"]) != int(p["sold"])
    ]
    data_rpo_s = round(target_ts - min(_acked(e) for e in missing), 3) if missing else 0.0
    rpo_s = max(data_rpo_s, rpo_floor_s)
    return RestoreVerdict(
        verified_orders=len(before) - len(missing),
        missing_orders=len(missing),
        unexpected_orders=len(unexpected),
        inconsistent_products=len(inconsistent),
        rpo_s=rpo_s,
        missing=(
            f"{len(missing)} of {len(before)} acknowledged orders missing at the recovery "
            f"target (first: {missing[0].key}, RPO {rpo_s} s)"
            if missing
            else None
        ),
        unexpected=(
            f"{len(unexpected)} orders placed after the recovery target were restored"
            if unexpected
            else None
        ),
        stock=(
            f"{len(inconsistent)} products whose stock disagrees with their orders "
            f"(first: product {inconsistent[0]['id']})"
            if inconsistent
            else None
        ),
    )


def policy_reasons(rto_s: float | None, rpo_s: float | None, objective: Objective) -> list[str]:
    """Where a measured restore breaks the stack's resiliency policy."""
    reasons = []
    if rto_s is not None and rto_s > objective.rto_s:
        reasons.append(f"RTO {rto_s:.1f} s breaks the stack's policy of {objective.rto_s:g} s")
    if rpo_s is not None and rpo_s > objective.rpo_s:
        reasons.append(f"RPO {rpo_s:.1f} s breaks the stack's policy of {objective.rpo_s:g} s")
    return reasons


def _acked(entry: LedgerEntry) -> float:
    return entry.acked if entry.acked is not None else entry.sent
