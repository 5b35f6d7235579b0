"""Reading a scenario's figures: the ledger checked against the storefront's audit.

The figures and the verdict on them are :mod:`peakready.verdict.failover`'s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared
from peakready.load.ledger import LEDGER_FILE, LedgerCheck, compare, read_ledger
from peakready.load.records import REQUESTS_FILE, read_events, read_records
from peakready.verdict.failover import Figures, measure

# --------------------------------------------------------------------------- I/O


def audit_token(configuration: Configuration, secrets: Secrets) -> str:
    """The storefront's audit token: the lab's generated one, else a secret/env var."""
    token = (secrets or {}).get("peakready_audit_token") or os.environ.get("PEAKREADY_AUDIT_TOKEN")
    if token:
        return str(token)
    if shared.target_of(configuration) == "lab":
        # Imported here: the lab only on the lab target.
        from peakready.lab.state import LabState

        return str(LabState.load(shared.stack_of(configuration)).secrets()["audit_token"])
    raise ActivityFailed("audit token: set the secret peakready_audit_token")


def audit(endpoint: str, token: str, keys: list[str], timeout_s: float = 30.0) -> dict[str, Any]:
    """``POST /audit`` for ``keys`` (the same call on both targets)."""
    try:
        answer = httpx.post(
            f"{endpoint.rstrip('/')}/audit",
            json={"idempotency_keys": keys},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise ActivityFailed(f"audit: {type(exc).__name__}: {exc}") from None
    if answer.status_code != 200:
        raise ActivityFailed(f"audit: {answer.status_code} {answer.text[:200]}")
    data: dict[str, Any] = answer.json()
    return data


def check_ledger(
    run: Path, configuration: Configuration, secrets: Secrets, attempts: int = 5
) -> LedgerCheck:
    """Compare the run's ledger with the database through the storefront's audit."""
    entries = read_ledger(run / LEDGER_FILE)
    endpoint = str(shared.driver(configuration, secrets).outputs()["endpoint"])
    token = audit_token(configuration, secrets)
    last: ActivityFailed | None = None
    for _ in range(attempts):  # the primary may be switching: a few tries, bounded
        try:
            return compare(entries, audit(endpoint, token, [e.key for e in entries]))
        except ActivityFailed as exc:
            last = exc

            time.sleep(2)
    raise last or ActivityFailed("audit: no answer")


def figures_of(run: Path, scenario: str, configuration: Configuration, secrets: Secrets) -> Figures:
    """Everything measured in ``run`` for ``scenario``, the ledger checked live."""
    check = check_ledger(run, configuration, secrets)
    return measure(scenario, read_records(run / REQUESTS_FILE), read_events(run), check)


__all__: list[str] = []  # helpers, not activities
