"""Probes of the app tier and of the public endpoint."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared

__all__ = ["app_group_at_desired", "app_instances", "endpoint_serving", "orders_accepted"]


def app_instances(
    configuration: Configuration = None, secrets: Secrets = None
) -> list[dict[str, Any]]:
    """Instances of the app group: ``{"id", "az", "healthy"}`` each."""
    return shared.driver(configuration, secrets).app_instances()


def app_group_at_desired(
    timeout_s: float = 30.0, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether the app group has its desired number of healthy instances, waiting up to
    ``timeout_s`` seconds for replacements to come up."""
    drv = shared.driver(configuration, secrets)
    deadline = time.monotonic() + timeout_s
    while True:
        group = drv.app_group_at_desired()
        if group.get("ok") or time.monotonic() >= deadline:
            return bool(group.get("ok"))
        time.sleep(0.5)


def endpoint_serving(
    timeout_s: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether the public endpoint answers ``/readyz`` and ``/products`` with 200,
    retrying for up to ``timeout_s`` seconds."""
    base = _endpoint(configuration, secrets)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ready = httpx.get(f"{base}/readyz", timeout=3.0).status_code == 200
            if ready and httpx.get(f"{base}/products", timeout=3.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def orders_accepted(
    product_id: int = 1,
    timeout_s: float = 15.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Whether the storefront acknowledges a real order (one unit of ``product_id``,
    replayed with the same idempotency key for up to ``timeout_s`` seconds)."""
    base = _endpoint(configuration, secrets)
    key = f"probe-{uuid.uuid4()}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = httpx.post(
                f"{base}/orders",
                json={"product_id": product_id, "quantity": 1},
                headers={"Idempotency-Key": key},
                timeout=5.0,
            )
            if answer.status_code in (200, 201):
                return True
            if answer.status_code < 500:
                raise ActivityFailed(f"order refused: {answer.status_code} {answer.text[:200]}")
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


# private


def _endpoint(configuration: Configuration, secrets: Secrets) -> str:
    endpoint = shared.driver(configuration, secrets).outputs().get("endpoint")
    if not endpoint:
        raise ActivityFailed("stack outputs: no 'endpoint'")
    return str(endpoint).rstrip("/")
