"""The real generator process (headless Locust) against an in-memory storefront."""

import time
from pathlib import Path

import pytest

from peakready.errors import PeakreadyError
from peakready.load import process
from peakready.load.ledger import LEDGER_FILE, compare, read_ledger
from peakready.load.records import REQUESTS_FILE, read_records
from peakready.load.settings import LoadSettings, loopback_only


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
