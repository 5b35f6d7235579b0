"""The drill's order ledger: what was acknowledged, and when.

A restore is proven only by counting what it holds against what was acknowledged
(LAB-NOTES), so every order the drill places goes through the storefront's public
API with an idempotency key and is written here with its acknowledgement time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from peakready.load import ledger as load_ledger


@dataclass
class LedgerEntry:
    key: str
    batch: str
    product_id: int
    quantity: int
    sent: float
    acked: float | None = None
    order_id: int | None = None
    status: int | None = None
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acked is not None and self.order_id is not None


@dataclass
class Ledger:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    entries: list[LedgerEntry] = field(default_factory=list)

    def key(self, batch: str, n: int) -> str:
        return f"backup-drill-{self.run_id}-{batch}-{n}"

    def acked(self, batch: str | None = None) -> list[LedgerEntry]:
        return [e for e in self.entries if e.acknowledged and batch in (None, e.batch)]

    def batch(self, batch: str) -> list[LedgerEntry]:
        return [e for e in self.entries if e.batch == batch]

    def save(self, path: Path) -> None:
        """The whole ledger (batches, unacknowledged attempts) as one JSON document."""
        path.write_text(
            json.dumps({"run_id": self.run_id, "entries": [asdict(e) for e in self.entries]})
        )

    def as_load_entries(self, batch: str) -> list[load_ledger.LedgerEntry]:
        """The acknowledged orders of ``batch`` in the load generator's ledger format."""
        return [
            load_ledger.LedgerEntry(
                key=e.key,
                order_id=int(e.order_id or 0),
                product_id=e.product_id,
                quantity=e.quantity,
                acked_at=float(e.acked or 0),
                status=int(e.status or 201),
            )
            for e in self.acked(batch)
        ]


class OrderClient(Protocol):
    """Places orders the way a customer does; the lab's is HTTP through HAProxy."""

    def products(self) -> list[dict[str, Any]]: ...

    def place(self, key: str, product_id: int, quantity: int) -> tuple[int, dict[str, Any]]:
        """POST the order; returns (HTTP status, body). Raises ``OSError`` when unreachable."""
        ...

    def close(self) -> None: ...


class HttpOrderClient:
    """The storefront HTTP contract (DESIGN §4)."""

    def __init__(
        self, endpoint: str, timeout: float = 5.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        if not endpoint.startswith("http://127.0.0.1:"):
            raise ValueError(f"endpoint {endpoint!r}: the lab drill only talks to 127.0.0.1")
        self.client = httpx.Client(base_url=endpoint, timeout=timeout, transport=transport)

    def products(self) -> list[dict[str, Any]]:
        response = self.client.get("/products")
        response.raise_for_status()
        return list(response.json())

    def place(self, key: str, product_id: int, quantity: int) -> tuple[int, dict[str, Any]]:
        try:
            response = self.client.post(
                "/orders",
                headers={"Idempotency-Key": key},
                json={"product_id": product_id, "quantity": quantity},
            )
        except httpx.TransportError as exc:
            raise OSError(str(exc)) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    def close(self) -> None:
        self.client.close()


def place_batch(
    client: OrderClient,
    ledger: Ledger,
    batch: str,
    count: int,
    product_ids: Sequence[int],
    deadline_s: float = 60.0,
    attempts: int = 5,
    writer: load_ledger.LedgerWriter | None = None,
) -> list[LedgerEntry]:
    """Place ``count`` orders of one unit, round-robin over ``product_ids``.

    Each acknowledgement is also appended (flushed, synced) through ``writer``, the
    load generator's ledger file, when given. Bounded: each order is retried with the
    same idempotency key at most ``attempts`` times, and the batch stops at ``deadline_s``.
    """
    stop_at = time.monotonic() + deadline_s
    placed: list[LedgerEntry] = []
    for n in range(count):
        if time.monotonic() > stop_at:
            break
        entry = LedgerEntry(
            key=ledger.key(batch, n),
            batch=batch,
            product_id=int(product_ids[n % len(product_ids)]),
            quantity=1,
            sent=time.time(),
        )
        ledger.entries.append(entry)
        placed.append(entry)
        for attempt in range(attempts):
            try:
                status, body = client.place(entry.key, entry.product_id, entry.quantity)
            except OSError as exc:
                entry.error = str(exc)[:200]
                time.sleep(0.2 * (attempt + 1))
                continue
            entry.status = status
            if status in (200, 201) and "id" in body:
                entry.acked = time.time()
                entry.order_id = int(body["id"])
                entry.error = None
                if writer is not None:
                    writer.append(ledger.as_load_entries(batch)[-1])
                break
            entry.error = f"HTTP {status}"
            if status < 500:
                break
            time.sleep(0.2 * (attempt + 1))
    return placed
