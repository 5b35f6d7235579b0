"""Actions of the peak rehearsals, timed to the load profile the generator follows."""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.chaos import shared
from peakready.chaos.az.actions import power_off_az
from peakready.chaos.verify.shared import audit, audit_token, post_with_token
from peakready.errors import PeakreadyError
from peakready.load.records import read_events
from peakready.load.shape import PeakProfile, read_started_profile

__all__ = [
    "end_flash_sale",
    "flash_sale_result",
    "power_off_busiest_az",
    "start_flash_sale",
    "wait_for_group_at_desired",
    "wait_for_load",
]

#: Phases of the profile an action can wait for.
PHASES = ("ramp", "peak", "flash", "end")


def load_profile(configuration: Configuration) -> tuple[float, PeakProfile, list[int]]:
    """When the run's load started, the profile it follows and its hot products."""
    try:
        run = read_started_profile(shared.run_dir(configuration))
    except PeakreadyError as exc:
        raise ActivityFailed(str(exc)) from None
    return run.started, run.profile, run.hot_products


def wait_for_load(
    phase: str = "peak",
    offset_s: float = 0.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Sleep until the load reaches ``phase`` (``ramp``: its start, ``peak``: the top of
    the ramp, ``flash``: the flash sale's spike, ``end``: the end of the profile), plus
    ``offset_s``. Bounded by the profile (at most an hour)."""
    if phase not in PHASES:
        raise ActivityFailed(f"phase {phase!r}: expected one of {', '.join(PHASES)}")
    started, profile, _ = load_profile(configuration)
    at = {
        "ramp": profile.baseline_s,
        "peak": profile.peak_at_s,
        "flash": profile.flash.at_s if profile.flash else profile.peak_at_s,
        "end": profile.duration_s,
    }[phase]
    until = started + at + offset_s
    time.sleep(max(0.0, until - time.time()))
    return {"phase": phase, "at_s": round(time.time() - started, 2)}


def wait_for_group_at_desired(
    timeout_s: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Until every instance the app group wants is in service, at most ``timeout_s``.

    ``peakready plan`` calls a tier statically stable from the group that target
    tracking holds at the load; an AZ lost while a scale-out is still warming up tests
    the scale-out instead (measured: 5 of 6 in service at the top of the ramp, 3 left
    after the AZ, where the settled group leaves 4)."""
    if not 0 <= float(timeout_s) <= 120:
        raise ActivityFailed(f"timeout_s {timeout_s}: expected 0 to 120")
    drv = shared.driver(configuration, secrets)
    start = time.monotonic()
    while not (group := drv.app_group_at_desired())["ok"]:
        if time.monotonic() - start >= float(timeout_s):
            break
        time.sleep(0.5)
    result = {**group, "waited_s": round(time.monotonic() - start, 2)}
    shared.record(configuration, "info", "group_at_desired", **result)
    return result


def start_flash_sale(
    units: int = 100, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Put ``units`` of the profile's hot product on sale (the storefront's
    ``POST /admin/stock``, with the audit token); before the spike, at baseline."""
    if not 1 <= int(units) <= 1_000_000:
        raise ActivityFailed(f"units {units}: expected 1 to 1000000")
    _, profile, hot = load_profile(configuration)
    if profile.flash is None or not hot:
        raise ActivityFailed("flash sale: the load profile has no flash sale (peak.flash_k)")
    product = _stock(configuration, secrets, hot[0], int(units))
    result = {
        "product_id": hot[0],
        "units": int(units),
        "sold_before": int(product["sold"]),
        "previous_stock": int(product["previous_stock"]),
    }
    shared.record(configuration, "info", "flash_sale", **result)
    return result


def end_flash_sale(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """Rollback: the hot product gets back the stock it had before the sale (a no-op
    when no sale was set up in this run)."""
    sale = next(
        (e for e in read_events(shared.run_dir(configuration)) if e.get("event") == "flash_sale"),
        None,
    )
    if sale is None:
        return {"restocked": False}
    _stock(configuration, secrets, int(sale["product_id"]), int(sale["previous_stock"]))
    shared.record(configuration, "recovery", "end_flash_sale", product_id=sale["product_id"])
    return {"restocked": True, "product_id": sale["product_id"], "stock": sale["previous_stock"]}


def _stock(configuration: Configuration, secrets: Secrets, product_id: int, units: int) -> Any:
    """``POST /admin/stock`` (the audit token): ``units`` of ``product_id`` on sale."""
    return post_with_token(
        str(shared.driver(configuration, secrets).outputs()["endpoint"]),
        audit_token(configuration, secrets),
        "/admin/stock",
        {"product_id": product_id, "units": units},
        f"stock of product {product_id}",
        timeout_s=10.0,
    )


def flash_sale_result(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """After the sale: the hot product's units sold in all and stock left (the audit)."""
    _, _, hot = load_profile(configuration)
    endpoint = str(shared.driver(configuration, secrets).outputs()["endpoint"])
    products = audit(endpoint, audit_token(configuration, secrets), [])["products"]
    product = next((p for p in products if int(p["id"]) == hot[0]), None)
    if product is None:
        raise ActivityFailed(f"flash sale: product {hot[0]} not in the audit")
    result = {"product_id": hot[0], "sold": int(product["sold"]), "stock": int(product["stock"])}
    shared.record(configuration, "info", "flash_sale_sold", **result)
    return result


def power_off_busiest_az(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Power off the AZ holding the most app instances in service, the database
    primary's on a tie (the worst case of DESIGN §6's ``az-loss-at-peak``)."""
    drv = shared.driver(configuration, secrets)
    primary = str(drv.db_primary()["az"])
    counts: dict[str, int] = {}
    for instance in drv.app_instances():
        if instance["healthy"]:
            counts[str(instance["az"])] = counts.get(str(instance["az"]), 0) + 1
    if not counts:
        raise ActivityFailed("no app instance in service: nothing to lose at the peak")
    busiest = max(counts, key=lambda az: (counts[az], az == primary))
    result = power_off_az(busiest, configuration, secrets)
    return {**result, "app_instances": counts.get(busiest, 0), "instances_per_az": counts}
