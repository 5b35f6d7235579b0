"""Each verdict depends on what it measures (DESIGN §6-8 and the stack's policy)."""

from peakready.load.ledger import LedgerEntry, compare
from peakready.load.records import RequestRecord
from peakready.topology import Objective
from peakready.verdict.failover import Figures, judge, measure

POLICY = Objective(rto_s=25, rpo_s=0)


def figures(**kw) -> Figures:
    base = {"fault_at": 100.0, "rto_s": 10.0, "requests": 100, "acked_orders": 50}
    return Figures(**{**base, **kw})


def test_clean_figures_pass() -> None:
    assert judge("db-primary-loss", figures(), POLICY) == []


def test_a_policy_rto_below_the_measured_one_fails_the_scenario() -> None:
    reasons = judge("db-primary-loss", figures(rto_s=21.3), Objective(rto_s=20))
    assert reasons == ["RTO 21.3 s exceeds the objective 20 s"]


def test_the_lab_target_tightens_a_looser_policy() -> None:
    assert judge("db-primary-loss", figures(rto_s=26.0), Objective(rto_s=60), rto_limit=25)


def test_a_path_that_never_recovers_fails() -> None:
    assert judge("az-power-loss", figures(rto_s=None), POLICY) == [
        "writes never recovered after the fault"
    ]


def test_a_ledger_order_missing_from_the_database_fails_with_lost_orders_1() -> None:
    ledger = [LedgerEntry("k1", 1, 1, 1, 1.0), LedgerEntry("k2", 2, 1, 1, 2.0)]
    audit = {"orders": {"k1": {"id": 1, "product_id": 1, "quantity": 1}, "k2": None}}
    records = [RequestRecord(101.0, 102.0, "order", 201, True)]
    events = [{"type": "fault", "event": "fail_database_primary", "at": 100.0}]
    result = measure("db-primary-loss", records, events, compare(ledger, audit))
    assert (result.acked_orders, result.lost_orders, result.rto_s) == (2, 1, 2.0)
    assert judge("db-primary-loss", result, POLICY) == ["1 acknowledged orders lost"]


def test_failed_requests_fail_app_instance_loss_even_without_a_policy_bound() -> None:
    reasons = judge("app-instance-loss", figures(failed_requests=2), Objective(rto_s=10))
    assert reasons == ["2 failed requests (allowed 0)"]


def test_failed_requests_are_allowed_up_to_the_policy() -> None:
    policy = Objective(rto_s=25, max_failed_requests=5)
    assert judge("db-primary-loss", figures(failed_requests=5), policy) == []
    assert judge("db-primary-loss", figures(failed_requests=6), policy)


def test_cache_loss_must_not_affect_the_order_path() -> None:
    reasons = judge("cache-primary-loss", figures(failed_orders=1, rto_s=0.1), Objective(rto_s=5))
    assert reasons == ["order path affected: 1 failed order attempts"]


def test_degraded_reads_must_stay_fast() -> None:
    reasons = judge("degraded-dependencies", figures(read_p95_ms=2500, rto_s=0.1), POLICY)
    assert reasons == ["degraded reads slow: p95 2500 ms > 1000 ms"]


def test_a_stale_primary_accepting_writes_fails() -> None:
    assert judge("az-power-loss", figures(stale_primary_ok=False), POLICY) == [
        "the stale primary accepted a write"
    ]


def test_no_fault_means_no_drill() -> None:
    assert judge("db-primary-loss", figures(fault_at=None, rto_s=None), POLICY) == [
        "no fault was injected"
    ]


def test_measure_takes_rto_on_the_scenarios_path() -> None:
    records = [
        RequestRecord(100.5, 100.6, "product", 200, True),
        RequestRecord(100.5, 103.0, "order", 201, True),
        RequestRecord(99.0, 99.1, "order", 201, True),
        RequestRecord(101.0, 101.2, "search", 503, False),
    ]
    events = [{"type": "fault", "event": "x", "at": 100.0}]
    assert measure("db-primary-loss", records, events, None).rto_s == 3.0
    cache = measure("cache-primary-loss", records, events, None)
    assert (cache.rto_s, cache.failed_requests, cache.failed_orders) == (0.6, 1, 0)


def test_a_slow_cache_failover_fails_cache_primary_loss() -> None:
    slow = figures(rto_s=0.1, cache_failover_s=7.5)
    assert judge("cache-primary-loss", slow, Objective(rto_s=5)) == [
        "cache failover took 7.5 s, objective 5 s"
    ]
    assert (
        judge("cache-primary-loss", figures(rto_s=0.1, cache_failover_s=3.3), Objective(rto_s=5))
        == []
    )


def test_failures_before_the_fault_are_baseline_not_the_scenarios() -> None:
    records = [
        RequestRecord(98.0, 98.6, "search", 503, False),
        RequestRecord(99.0, 99.1, "order", 201, True),
        RequestRecord(100.2, 100.3, "product", 502, False),
        RequestRecord(100.4, 100.5, "product", 200, True),
    ]
    events = [{"type": "fault", "event": "kill_app_instance", "at": 100.0}]
    result = measure("app-instance-loss", records, events, None)
    assert (result.requests, result.failed_requests) == (2, 1)
    assert (result.baseline_requests, result.baseline_failed_requests) == (2, 1)


def test_order_latency_counts_while_the_fault_lasts_not_during_the_labs_restore() -> None:
    """A broker node rebooting in the restore takes one of the lab's cores: the orders
    slowed then are the lab's repair, not the fault's; slow orders before it still count."""
    records = [
        RequestRecord(99.0, 99.9, "order", 201, True),  # before the fault
        RequestRecord(101.0, 101.01, "order", 201, True),
        RequestRecord(104.0, 104.6, "order", 201, True),  # the restore has begun
    ]
    fault = {"type": "fault", "event": "fail_queue_leader", "at": 100.0}
    restore = {"type": "recovery", "event": "restore", "at": 110.0, "started": 103.0}
    figures = measure("broker-node-loss", records, [fault, restore], None)
    assert (figures.order_p99_ms, figures.baseline_order_p99_ms) == (10.0, 900.0)
    assert figures.fault_orders == 1  # the orders that p99 was taken over
    assert measure("broker-node-loss", records, [fault], None).order_p99_ms == 600.0
    slow_before_restore = [*records[:2], RequestRecord(102.0, 102.6, "order", 201, True)]
    assert (
        measure("broker-node-loss", slow_before_restore, [fault, restore], None).order_p99_ms
        == 600.0
    )


# the order pipeline's scenarios ------------------------------------------------------

PIPELINE = Objective(rto_s=5, rpo_s=0, max_failed_requests=0)


def pipeline_figures(**kw) -> Figures:
    base = {"delivered_orders": 50, "missing_deliveries": 0, "applied_twice": 0}
    return figures(rto_s=0.1, **{**base, **kw})


def test_a_back_office_outage_that_drains_within_the_objective_passes() -> None:
    ok = pipeline_figures(drain_s=12.0, order_p99_ms=40.0)
    assert judge("backoffice-outage", ok, PIPELINE, order_p99_limit_ms=250, drain_limit_s=60) == []


def test_a_backlog_that_drains_too_slowly_fails_the_outage() -> None:
    slow = pipeline_figures(drain_s=75.5)
    assert judge("backoffice-outage", slow, PIPELINE, drain_limit_s=60) == [
        "backlog drained 75.5 s after the restart, objective 60 s"
    ]
    never = pipeline_figures(drain_s=None)
    assert judge("backoffice-outage", never, PIPELINE, drain_limit_s=60) == [
        "the back office's backlog never drained"
    ]


def test_orders_slowed_by_the_pipeline_fail_its_scenarios() -> None:
    slow = pipeline_figures(
        drain_s=3.0, order_p99_ms=900.0, fault_orders=240, broker_election_s=1.2
    )
    for scenario in ("backoffice-outage", "broker-node-loss"):
        assert judge(scenario, slow, PIPELINE, order_p99_limit_ms=250) == [
            "order p99 900 ms > 250 ms over 240 orders: the order path waited for the pipeline"
        ]


def test_missing_and_twice_applied_deliveries_fail_with_their_counts() -> None:
    bad = pipeline_figures(missing_deliveries=2, applied_twice=1, broker_election_s=0.8)
    assert judge("broker-node-loss", bad, PIPELINE) == [
        "2 acknowledged orders never reached the back office",
        "1 orders applied twice in the back office",
    ]


def test_a_broker_node_loss_without_a_new_leader_fails() -> None:
    assert judge("broker-node-loss", pipeline_figures(), PIPELINE) == [
        "no new leader of the order queue was seen"
    ]


def test_a_pipeline_scenario_without_a_back_office_check_fails() -> None:
    unchecked = figures(rto_s=0.1, broker_election_s=0.5)
    assert judge("broker-node-loss", unchecked, PIPELINE) == [
        "the back office was not checked (no queue tier, or on AWS no "
        "peakready_backoffice_endpoint that reaches it)"
    ]
