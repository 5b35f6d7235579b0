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
from peakready.errors import PeakreadyError
from peakready.load.ledger import (
    DeliveryCheck,
    LedgerCheck,
    LedgerEntry,
    compare,
    compare_deliveries,
    run_ledger,
)
from peakready.load.records import read_events, run_records
from peakready.load.shape import read_started_profile
from peakready.planner import assess, requests_per_instance
from peakready.topology import Topology
from peakready.verdict import peak
from peakready.verdict.failover import Figures, judge, ledger_reasons, measure
from peakready.verdict.peak import PeakFigures

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


def post_with_token(
    endpoint: str, token: str, path: str, body: dict[str, Any], what: str, timeout_s: float
) -> dict[str, Any]:
    """``POST <path>`` with the audit token (the storefront's drill endpoints, the same
    on both targets); its JSON, or ActivityFailed naming ``what``."""
    try:
        answer = httpx.post(
            f"{endpoint.rstrip('/')}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise ActivityFailed(f"{what}: {type(exc).__name__}: {exc}") from None
    if answer.status_code != 200:
        raise ActivityFailed(f"{what}: {answer.status_code} {answer.text[:200]}")
    data: dict[str, Any] = answer.json()
    return data


def audit(endpoint: str, token: str, keys: list[str], timeout_s: float = 30.0) -> dict[str, Any]:
    """``POST /audit`` for ``keys``."""
    return post_with_token(
        endpoint, token, "/audit", {"idempotency_keys": keys}, "audit", timeout_s
    )


def check_ledger(
    run: Path, configuration: Configuration, secrets: Secrets, attempts: int = 5
) -> LedgerCheck:
    """Compare the run's ledger with the database through the storefront's audit, and,
    with an order pipeline, with the back office (:func:`check_deliveries`)."""
    entries = run_ledger(run)
    outputs = shared.driver(configuration, secrets).outputs()
    endpoint = str(outputs["endpoint"])
    token = audit_token(configuration, secrets)
    last: ActivityFailed | None = None
    for _ in range(attempts):  # the primary may be switching: a few tries, bounded
        try:
            answer = audit(endpoint, token, [e.key for e in entries])
            break
        except ActivityFailed as exc:
            last = exc
            time.sleep(2)
    else:
        raise last or ActivityFailed("audit: no answer")
    check = compare(entries, answer)
    backoffice = backoffice_url(configuration, outputs)
    if backoffice and answer.get("outbox") is not None:
        model = shared.topology(configuration)
        wait_s = (model.queue.max_backlog_age_s if model.queue else 60.0) + 30.0
        since, drained = drain_events(run)
        check.delivery = check_deliveries(entries, endpoint, backoffice, token, wait_s, since=since)
        if since is not None and check.delivery.drain_s is not None:
            # The first check after the restart measured the drain; later ones keep it.
            if drained is None:
                shared.record(
                    configuration, "recovery", "backlog_drained", drain_s=check.delivery.drain_s
                )
            else:
                check.delivery.drain_s = drained
    return check


def backoffice_url(configuration: Configuration, outputs: dict[str, Any]) -> str | None:
    """Where the drill asks the back office: ``peakready_backoffice_endpoint`` when set;
    else, on the lab, the ``backoffice_endpoint`` output. An AWS stack's output is an
    internal load balancer, reachable from inside its VPC only: without the setting (a
    URL that reaches it, e.g. through the operator's VPN) the delivery check is skipped,
    and the pipeline's own scenarios fail as not checked."""
    configured = (configuration or {}).get("peakready_backoffice_endpoint")
    if configured:
        return str(configured)
    if shared.target_of(configuration) == "lab" and outputs.get("backoffice_endpoint"):
        return str(outputs["backoffice_endpoint"])
    return None


def drain_events(run: Path) -> tuple[float | None, float | None]:
    """When the drill last restarted the back office's consumers (its drain's start),
    and the drain time recorded since then (None: not drained yet, or no restart)."""
    events = read_events(run)
    restarts = [float(e["at"]) for e in events if e.get("event") == "consumers_restarted"]
    if not restarts:
        return None, None
    drained = [
        float(e["drain_s"])
        for e in events
        if e.get("event") == "backlog_drained" and float(e["at"]) >= restarts[-1]
    ]
    return restarts[-1], (drained[0] if drained else None)


def check_deliveries(
    entries: list[LedgerEntry],
    endpoint: str,
    backoffice: str,
    token: str,
    wait_s: float,
    since: float | None = None,
) -> DeliveryCheck:
    """Every acknowledged order in the back office exactly once, the outbox drained.

    Orders still on their way are waited for, at most ``wait_s`` seconds: polled every
    0.5 s until the outbox is empty and every order applied; ``drain_s`` is when that
    happened, counted from ``since`` (the consumers' restart) or the start of the wait.
    """
    ids = [e.order_id for e in entries]
    started = time.time()
    deadline = time.monotonic() + wait_s
    while True:
        try:  # the back office may be coming back (its front marks workers up)
            pending = outbox_pending(endpoint, token)
            answer = post_with_token(
                backoffice, token, "/audit", {"order_ids": ids}, "back-office audit", 30.0
            )
        except ActivityFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        check = compare_deliveries(entries, answer, pending)
        drained = not check.outbox_pending and not check.missing_deliveries
        if drained or time.monotonic() > deadline:
            if drained:
                check.drain_s = round(max(0.0, time.time() - (since or started)), 1)
            return check
        time.sleep(0.5)


def outbox_pending(endpoint: str, token: str) -> int:
    """Outbox rows the relays have not sent yet (the storefront's audit, no keys)."""
    answer = audit(endpoint, token, [])
    return int((answer.get("outbox") or {}).get("pending", 0))


def figures_of(run: Path, scenario: str, configuration: Configuration, secrets: Secrets) -> Figures:
    """Everything measured in ``run`` for ``scenario``, the ledger checked live."""
    check = check_ledger(run, configuration, secrets)
    return measure(scenario, run_records(run), read_events(run), check)


def peak_figures_of(
    run: Path, scenario: str, configuration: Configuration, secrets: Secrets
) -> PeakFigures:
    """A peak run's per-class figures, with the app group's scaling timeline."""
    records = run_records(run)
    try:  # the profile's window only: the baseline after it is not the peak
        end = read_started_profile(run).end
        records = [r for r in records if r.t0 < end]
    except PeakreadyError:
        pass
    since = records[0].t0 if records else time.time()
    scaling = shared.driver(configuration, secrets).scaling_timeline(since)
    model = shared.topology(configuration)
    rto = shared.rto_limit(configuration, scenario, model)
    headroom = model.forecast.headroom
    return peak.measure(records, read_events(run), scaling, model.slo, headroom, rto)


def peak_reasons(
    scenario: str, figures: Figures, peak_figures: PeakFigures, configuration: Configuration
) -> list[str]:
    """Every rule a peak run breaks: the ledger's, then the peak's (DESIGN §6, the slo)."""
    model = shared.topology(configuration)
    lab = shared.target_of(configuration) == "lab"
    return ledger_reasons(figures) + peak.judge(
        scenario,
        peak_figures,
        model.slo,
        shared.rto_limit(configuration, scenario, model),
        scaled=model.lab.autoscaling if lab else True,
        plan_claim=plan_claim(model) if scenario == "az-loss-at-peak" else None,
    )


def scenario_reasons(
    scenario: str, figures: Figures, configuration: Configuration, model: Topology | None = None
) -> list[str]:
    """Every rule a fault scenario breaks (DESIGN §6/§8, the policy of ``model``, default:
    the configured stack's): the ledger, the RTO, failed requests and, for the
    pipeline's scenarios, the order p99 and the backlog's drain."""
    model = model or shared.topology(configuration)
    return judge(
        scenario,
        figures,
        model.objective(scenario),
        shared.rto_limit(configuration, scenario, model),
        order_p99_limit_ms=model.slo.order_p99_ms,
        drain_limit_s=model.queue.max_backlog_age_s if model.queue else None,
    )


def plan_claim(model: Topology) -> tuple[bool, str]:
    """What ``peakready plan`` claims for the app tier at the forecast peak: statically
    stable or not, and the figures it rests on."""
    rpi, source = requests_per_instance(model)
    check = next(c for c in assess(model, rpi, source).checks if c.tier == "app")
    return check.statically_stable, (
        f"peakready plan: {check.after_az_loss:g} app instances after losing an AZ, "
        f"{check.needed:g} needed at the {check.scenario}"
    )


__all__: list[str] = []  # helpers, not activities
