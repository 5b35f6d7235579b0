"""The peak verdict: what a rehearsal of the peak measured, per class, and the rules on it.

Classes of traffic, in the order a shop sheds them last to first: ``order`` (checkout),
``hot_order`` (a flash sale's buyers), ``browse`` (product reads) and ``search``. Per
class the figures count *offered* requests (new arrivals, not retries), *served* ones
(the answer the stack should give: 2xx, or 409 sold out for an order), *shed* answers
(503/429: the stack said "not now", fast) and *timed out* attempts (no answer). Order
goodput is served ÷ offered orders; an order served after retries counts once.

The rules (:func:`judge`) are the stack's ``slo`` (order p99, browse p99, minimum order
goodput) plus each scenario's own (DESIGN §6): ``peak-surge`` must scale out,
``flash-sale`` must sell exactly the units on sale to buyers who all get an answer, and
``az-loss-at-peak`` must get order goodput back within the policy's RTO and agree with
the capacity plan's static-stability claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from peakready.load.records import RequestRecord, first_fault_at, percentile
from peakready.topology import Slo

PEAK_SCENARIOS = ("peak-surge", "flash-sale", "az-loss-at-peak")
CLASSES = ("order", "hot_order", "browse", "search")
KIND_CLASS = {"order": "order", "hot_order": "hot_order", "product": "browse", "search": "search"}
SHED_STATUSES = frozenset({429, 503})
#: A flash sale's buyers must be answered this fast (p99, DESIGN §8).
FLASH_P99_MS = 500.0
#: Seconds over which goodput is averaged when finding when it came back after a fault.
GOODPUT_WINDOW_S = 3.0


@dataclass
class PeakFigures:
    """The peak fields of ``summary.json`` (DESIGN §7), plus what the report explains."""

    offered: dict[str, int] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)
    shed: dict[str, int] = field(default_factory=dict)
    timed_out: dict[str, int] = field(default_factory=dict)
    p50_ms: dict[str, float] = field(default_factory=dict)
    p99_ms: dict[str, float] = field(default_factory=dict)
    shed_p99_ms: float | None = None
    order_goodput: float | None = None
    instances: list[list[float]] = field(default_factory=list)  # [seconds, in service]
    min_instances: int | None = None
    max_instances: int | None = None
    scale_out_s: float | None = None
    goodput_recovered_s: float | None = None  # after the fault, back >= the objective
    served_after_fault: float | None = None  # all classes, from recovery to the end
    instances_after_fault: int | None = None  # fewest in service within the RTO after it
    instances_needed: int | None = None  # for the peak's rate, headroom included
    capacity_per_instance: float | None = None  # requests/s (the profile's source)
    peak_per_s: float | None = None
    sold_units: int | None = None  # flash sale: units of the hot product sold
    units_on_sale: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _served(record: RequestRecord) -> bool:
    return record.ok


def measure(
    records: Sequence[RequestRecord],
    events: Sequence[dict[str, Any]],
    scaling: Sequence[dict[str, Any]],
    slo: Slo,
    headroom: float = 0.0,
    rto_s: float = 30.0,
) -> PeakFigures:
    """Figures of a peak run from its records, fault events and the group's scaling
    timeline (``scale`` decisions and ``in_service`` counts, epoch ``at``); pure.

    Static stability is measured as the plan states it: the instances in service after
    the fault (the fewest within ``rto_s``, before replacements count) against the
    instances the peak's rate needs at the capacity one instance showed, plus
    ``headroom``."""
    figures = PeakFigures()
    if not records:
        return figures
    origin = records[0].t0
    end = max(r.t1 for r in records)
    by_class: dict[str, list[RequestRecord]] = {c: [] for c in CLASSES}
    for record in records:
        by_class[KIND_CLASS.get(record.kind, "browse")].append(record)
    for name, group in by_class.items():
        if not group and name == "hot_order":
            continue
        figures.offered[name] = sum(1 for r in group if r.attempt == 1)
        figures.served[name] = sum(1 for r in group if _served(r))
        figures.shed[name] = sum(1 for r in group if r.status in SHED_STATUSES)
        figures.timed_out[name] = sum(1 for r in group if r.status == 0)
        # Orders: every answer counts (an order is never shed by design); browsing and
        # search: the answers served (DESIGN §7; a shed answer is judged apart).
        kept = (
            [r for r in group if r.status != 0]
            if name in ("order", "hot_order")
            else [r for r in group if _served(r)]
        )
        latencies = [r.latency * 1000 for r in kept]
        figures.p50_ms[name] = round(percentile(latencies, 0.50), 1)
        figures.p99_ms[name] = round(percentile(latencies, 0.99), 1)
    shed = [r.latency * 1000 for r in records if r.status in SHED_STATUSES]
    figures.shed_p99_ms = round(percentile(shed, 0.99), 1) if shed else None
    offered = figures.offered.get("order", 0)
    if offered:
        figures.order_goodput = round(figures.served["order"] / offered, 4)
    _instances(figures, scaling, records, origin, end)
    fault_at = first_fault_at(events)
    profile = next((e for e in events if e.get("event") == "peak_profile"), None)
    if profile is not None and float(profile.get("per_instance_s") or 0) > 0:
        figures.capacity_per_instance = float(profile["per_instance_s"])
        figures.peak_per_s = float(profile["peak_per_s"])
        figures.instances_needed = math.ceil(
            figures.peak_per_s * (1 + headroom) / figures.capacity_per_instance - 1e-9
        )
    if fault_at is not None:
        _recovery(figures, records, by_class["order"], fault_at, end, slo)
        counts = _counts(scaling)
        at_fault = [n for at, n in counts if at <= fault_at][-1:]
        within = [n for at, n in counts if fault_at < at <= fault_at + rto_s]
        if at_fault or within:
            figures.instances_after_fault = min(at_fault + within)
    sale = next((e for e in events if e.get("event") == "flash_sale"), None)
    if sale is not None:
        figures.units_on_sale = int(sale.get("units", 0))
        after = next((e for e in reversed(events) if e.get("event") == "flash_sale_sold"), None)
        if after is not None:
            figures.sold_units = int(after.get("sold", 0)) - int(sale.get("sold_before", 0))
    return figures


def _instances(
    figures: PeakFigures,
    scaling: Sequence[dict[str, Any]],
    records: Sequence[RequestRecord],
    origin: float,
    end: float,
) -> None:
    """Instances in service over the run, and the scale-out reaction: from the first
    second the load offered more requests per instance than the target, to the first
    new instance serving after it."""
    counts = _counts(scaling)
    before = [c for c in counts if c[0] <= origin]
    during = [c for c in counts if origin < c[0] <= end]
    if before:
        during.insert(0, (origin, before[-1][1]))
    if not during:
        return
    figures.instances = [[round(at - origin, 2), n] for at, n in during]
    figures.min_instances = min(n for _, n in during)
    figures.max_instances = max(n for _, n in during)
    targets = [
        float(e["target"]) for e in scaling if e.get("event") == "in_service" and e.get("target")
    ]
    if not targets:
        return
    target = targets[-1]

    def serving_at(t: float) -> int:
        current = during[0][1]
        for at, n in during:
            if at > t:
                break
            current = n
        return current

    arrivals: dict[int, int] = {}
    for record in records:
        second = int(record.t0 - origin)
        arrivals[second] = arrivals.get(second, 0) + 1
    for second in sorted(arrivals):
        t = origin + second
        serving = serving_at(t)
        if serving and arrivals[second] / serving > target:
            later = next((at for at, n in during if at > t and n > serving), None)
            if later is not None:
                figures.scale_out_s = round(later - t, 2)
            return


def _counts(scaling: Sequence[dict[str, Any]]) -> list[tuple[float, int]]:
    return sorted(
        (float(e["at"]), int(e["in_service"]))
        for e in scaling
        if e.get("event") == "in_service" and "at" in e
    )


def _recovery(
    figures: PeakFigures,
    records: Sequence[RequestRecord],
    orders: Sequence[RequestRecord],
    fault_at: float,
    end: float,
    slo: Slo,
) -> None:
    """When order goodput (served ÷ offered in a sliding window) came back to the
    objective after the fault, and what share of all requests the tier served from then
    to the end of the load (what static stability promises: all of it)."""
    new = [r for r in orders if r.attempt == 1 and r.t0 >= fault_at]
    served_at = [r.t1 for r in orders if _served(r) and r.t0 >= fault_at]
    step, t = 0.5, fault_at
    while t + GOODPUT_WINDOW_S <= end:
        offered = sum(1 for r in new if t <= r.t0 < t + GOODPUT_WINDOW_S)
        served = sum(1 for at in served_at if t <= at < t + GOODPUT_WINDOW_S)
        if offered and served / offered >= slo.min_order_goodput:
            figures.goodput_recovered_s = round(t - fault_at, 2)
            break
        t += step
    since = fault_at + (figures.goodput_recovered_s or 0.0)
    after = [r for r in records if r.t0 >= since]
    arrivals = sum(1 for r in after if r.attempt == 1)
    if arrivals:
        figures.served_after_fault = round(sum(1 for r in after if _served(r)) / arrivals, 4)


def judge(
    scenario: str,
    figures: PeakFigures,
    slo: Slo,
    rto_s: float,
    scaled: bool = True,
    plan_claim: tuple[bool, str] | None = None,
) -> list[str]:
    """Why a peak run breaks its rules; [] = pass. ``scaled``: the group may scale (the
    lab's ``autoscaling``); ``plan_claim``: the capacity plan's (stable, explanation)."""
    reasons: list[str] = []
    goodput = figures.order_goodput
    if goodput is None:
        reasons.append("no order was offered")
    elif scenario != "az-loss-at-peak" and goodput < slo.min_order_goodput:
        reasons.append(
            f"order goodput {goodput:.1%} below the objective {slo.min_order_goodput:.0%} "
            f"({figures.served.get('order', 0)} of {figures.offered.get('order', 0)} orders "
            "served): orders starved"
        )
    p99 = figures.p99_ms.get("order", 0.0)
    if scenario != "az-loss-at-peak" and p99 > slo.order_p99_ms:
        reasons.append(f"order p99 {p99:.0f} ms exceeds the objective {slo.order_p99_ms:g} ms")
    browse = max(figures.p99_ms.get("browse", 0.0), figures.p99_ms.get("search", 0.0))
    if scenario != "az-loss-at-peak" and browse > slo.browse_p99_ms:
        reasons.append(
            f"browse p99 {browse:.0f} ms (served) exceeds the objective {slo.browse_p99_ms:g} ms"
        )
    if scenario == "peak-surge":
        if figures.max_instances is None:
            reasons.append("no scaling timeline: instances in service unknown")
        elif figures.max_instances <= (figures.min_instances or 0):
            why = " (autoscaling is off)" if not scaled else ""
            reasons.append(
                f"the tier did not scale out: {figures.max_instances} instances in service "
                f"throughout{why}"
            )
    if scenario == "flash-sale":
        reasons += _flash(figures, slo)
    if scenario == "az-loss-at-peak":
        reasons += _static_stability(figures, slo, rto_s, plan_claim)
    return reasons


def _flash(figures: PeakFigures, slo: Slo) -> list[str]:
    reasons = []
    units, sold = figures.units_on_sale, figures.sold_units
    if units is None or sold is None:
        reasons.append("flash sale: units on sale or sold not recorded")
    elif sold != units:
        reasons.append(f"flash sale: {sold} units sold of {units} on sale (exactly {units})")
    buyers = figures.offered.get("hot_order", 0)
    answered = figures.served.get("hot_order", 0)
    if buyers and answered < buyers:
        reasons.append(
            f"flash sale: {buyers - answered} of {buyers} buyers got no definitive answer "
            "(201 or 409)"
        )
    if figures.timed_out.get("hot_order", 0):
        reasons.append(f"flash sale: {figures.timed_out['hot_order']} buyer attempts timed out")
    hot = figures.p99_ms.get("hot_order", 0.0)
    if hot > FLASH_P99_MS:
        reasons.append(f"flash sale: buyers' p99 {hot:.0f} ms exceeds {FLASH_P99_MS:g} ms")
    return reasons


def _static_stability(
    figures: PeakFigures, slo: Slo, rto_s: float, plan_claim: tuple[bool, str] | None
) -> list[str]:
    reasons = []
    recovered = figures.goodput_recovered_s
    if recovered is None:
        reasons.append(
            f"order goodput never came back to {slo.min_order_goodput:.0%} after the AZ loss"
        )
    elif recovered > rto_s:
        reasons.append(
            f"order goodput back to {slo.min_order_goodput:.0%} after {recovered:.1f} s, "
            f"objective {rto_s:g} s"
        )
    stable, claim = plan_claim or (False, "")
    have, need = figures.instances_after_fault, figures.instances_needed
    if stable and have is not None and need is not None and have < need:
        reasons.append(
            f"the plan says statically stable ({claim}); the rehearsal disagrees: {have} app "
            f"instances in service after losing the AZ, {need} needed for the peak's "
            f"{figures.peak_per_s or 0:.0f} requests/s at {figures.capacity_per_instance or 0:.0f}"
            "/s each (headroom included)"
        )
    return reasons
