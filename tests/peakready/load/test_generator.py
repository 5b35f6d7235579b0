"""The real generator process (headless Locust) against an in-memory storefront."""

import json
import time
from pathlib import Path

import pytest

from peakready.errors import PeakreadyError
from peakready.load import process
from peakready.load.ledger import LEDGER_FILE, compare, read_ledger, run_ledger
from peakready.load.process import WORKERS_DIR
from peakready.load.records import (
    GENERATOR_FILE,
    PROFILE_FILE,
    REQUESTS_FILE,
    SHARDS_DIR,
    RequestRecord,
    read_records,
    run_records,
)
from peakready.load.settings import LoadSettings, loopback_only
from peakready.load.shape import PeakProfile


def test_orders_are_retried_with_the_same_key_and_every_ack_is_in_the_ledger(
    storefront, tmp_path: Path
) -> None:
    settings = LoadSettings(
        endpoint=storefront.url,
        orders_per_s=20,
        reads_per_s=10,
        searches_per_s=5,
        duration_s=20,
        users_per_kind=2,
    )
    load = process.start(settings, tmp_path, wait_s=20)
    time.sleep(3)
    assert process.stop(load) == 0
    assert not load.running()
    ledger = read_ledger(tmp_path / LEDGER_FILE)
    records = read_records(tmp_path / REQUESTS_FILE)
    # every third new order was committed and answered 503: its retry (same key)
    # must have been acknowledged with the same order, never a second one
    assert any(r.kind == "order" and r.status == 503 for r in records)
    assert any(r.kind == "order" and r.status == 200 for r in records)
    assert len(ledger) >= 20
    assert len({e.key for e in ledger}) == len(ledger)
    check = compare(ledger, storefront.audit([e.key for e in ledger]))
    assert check.ok, check.as_dict()
    assert {r.kind for r in records} == {"order", "product", "search"}
    # bounded in rate: 35 requests/s configured, for ~3-4 s
    assert len(records) < 35 * 8


def test_the_generator_stops_itself_after_its_duration(storefront, tmp_path: Path) -> None:
    settings = LoadSettings(
        endpoint=storefront.url,
        orders_per_s=5,
        reads_per_s=0,
        searches_per_s=0,
        duration_s=2,
        users_per_kind=1,
    )
    load = process.start(settings, tmp_path, wait_s=20)
    load.process.wait(15)
    assert load.process.returncode == 0


def test_a_generator_without_a_storefront_fails_clearly(tmp_path: Path) -> None:
    settings = LoadSettings(endpoint="http://127.0.0.1:9", duration_s=5, startup_timeout_s=1)
    with pytest.raises(PeakreadyError, match="load generator"):
        process.start(settings, tmp_path, wait_s=40)


def test_bad_load_settings_name_the_field() -> None:
    with pytest.raises(PeakreadyError, match="orders_per_s 900"):
        LoadSettings(endpoint="http://127.0.0.1:1", orders_per_s=900)
    with pytest.raises(PeakreadyError, match="expected an http"):
        LoadSettings(endpoint="127.0.0.1:80")


def test_lab_load_goes_to_loopback_only() -> None:
    loopback_only("http://127.0.0.1:21000", "lab")
    with pytest.raises(PeakreadyError, match=r"127\.0\.0\.1"):
        loopback_only("http://10.0.0.1:80", "lab")


def profile(baseline: float, peak: float, hold_s: float = 3.0) -> dict:
    return PeakProfile(
        baseline_per_s=baseline,
        peak_per_s=peak,
        baseline_s=2.0,
        ramp_s=2.0,
        hold_s=hold_s,
        mix={"order": 0.2, "product": 0.6, "search": 0.2},
    ).as_dict()


def per_second(records: list[RequestRecord]) -> dict[int, int]:
    start = records[0].t0
    counts: dict[int, int] = {}
    for r in records:
        if r.attempt == 1:
            counts[int(r.t0 - start)] = counts.get(int(r.t0 - start), 0) + 1
    return counts


def mean(counts: dict[int, int], first: int, last: int) -> float:
    """Requests per second over seconds ``first`` to ``last``, inclusive."""
    return sum(counts.get(i, 0) for i in range(first, last + 1)) / (last - first + 1)


def test_a_peak_profile_offers_its_arrival_rate_and_goes_on_at_baseline_after_it(
    tmp_path: Path, make_storefront
) -> None:
    shop = make_storefront(fail_every=0)
    settings = LoadSettings(endpoint=shop.url, profile=profile(20, 200), duration_s=12)
    load = process.start(settings, tmp_path, wait_s=20)
    load.process.wait(30)
    records = run_records(tmp_path)
    counts = per_second(records)
    # Means over whole seconds: one second's count jitters with the scheduler.
    assert 10 <= mean(counts, 0, 1) <= 30  # baseline 20/s
    assert 150 <= counts[5] <= 250  # the hold at 200/s
    assert 12 <= mean(counts, 8, 10) <= 28  # the baseline again after the 7 s profile
    assert {r.kind for r in records} == {"order", "product", "search"}
    ledger = run_ledger(tmp_path)
    assert compare(ledger, shop.audit([e.key for e in ledger])).ok
    cost = json.loads((tmp_path / GENERATOR_FILE).read_text())
    assert cost["requests"] == len(records) and cost["cpu_us_per_request"] > 0
    started = json.loads((tmp_path / PROFILE_FILE).read_text())
    assert started["profile"]["peak_per_s"] == 200


def test_the_open_model_keeps_offering_while_the_stack_is_slow(
    tmp_path: Path, make_storefront
) -> None:
    """A storefront answering in 0.5 s: a closed model would fall to users/0.5 s."""
    shop = make_storefront(fail_every=0, delay_s=0.5)
    settings = LoadSettings(endpoint=shop.url, profile=profile(40, 40), duration_s=8)
    load = process.start(settings, tmp_path, wait_s=20)
    load.process.wait(30)
    counts = per_second(run_records(tmp_path))
    assert 30 <= mean(counts, 2, 5) <= 50  # still ~40 new requests/s


def test_a_master_with_two_workers_merges_their_ledger_shards(
    tmp_path: Path, make_storefront
) -> None:
    shop = make_storefront(fail_every=4)
    settings = LoadSettings(endpoint=shop.url, profile=profile(30, 120), duration_s=10)
    load = process.start(settings, tmp_path, wait_s=30, workers=2, bind="127.0.0.1:20491")
    assert load.process.wait(60) == 0
    shards = sorted((tmp_path / SHARDS_DIR).iterdir())
    assert len(shards) == 2
    for shard in shards:  # each worker's share, streamed to the master
        assert read_ledger(shard / LEDGER_FILE)
    ledger = run_ledger(tmp_path)
    assert len({e.key for e in ledger}) == len(ledger) > 50
    check = compare(ledger, shop.audit([e.key for e in ledger]))
    assert check.ok, check.as_dict()
    # each worker kept its own shard locally too
    local = sorted((tmp_path / WORKERS_DIR).glob("*/ledger.jsonl"))
    assert sum(len(read_ledger(p)) for p in local) == len(ledger)
    assert json.loads((tmp_path / GENERATOR_FILE).read_text())["workers"] == 2


def test_a_profile_longer_than_the_run_or_malformed_is_refused_by_name() -> None:
    with pytest.raises(PeakreadyError, match="shorter than the profile's 7 s"):
        LoadSettings(endpoint="http://127.0.0.1:1", profile=profile(1, 2), duration_s=5)
    with pytest.raises(PeakreadyError, match="peak profile"):
        LoadSettings(endpoint="http://127.0.0.1:1", profile={"peak_per_s": 3})
