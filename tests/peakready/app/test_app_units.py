"""Units of the storefront app that need no server: settings, guards, search queries."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from peakready.app.db import seed_name, seed_price
from peakready.app.guard import BoundedRunner, DependencyDown, DependencyGuard
from peakready.app.main import create_app
from peakready.app.search import OpenSearchSearch, query_words, sphinx_index_config
from peakready.app.settings import AppSettings, load_settings, parse_hosts
from peakready.errors import PeakreadyError

REPO = Path(__file__).resolve().parents[3]


def test_parse_hosts_keeps_order() -> None:
    assert parse_hosts("a:1, b:22 ,", "X") == [("a", 1), ("b", 22)]


@pytest.mark.parametrize("value", ["a", "a:", ":1", "a:x", "a:70000"])
def test_parse_hosts_names_the_variable_and_the_bad_entry(value: str) -> None:
    with pytest.raises(PeakreadyError) as info:
        parse_hosts(value, "PEAKREADY_APP_SEARCH_HOSTS")
    assert info.value.lines == [
        f"PEAKREADY_APP_SEARCH_HOSTS: expected host:port[,host:port…], got {value!r}"
    ]


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKREADY_APP_PORT", "23199")
    monkeypatch.setenv("PEAKREADY_APP_MIGRATE", "true")
    monkeypatch.setenv("PEAKREADY_APP_DB_PASSWORD", "s3cret")
    settings = load_settings()
    assert (settings.port, settings.migrate) == (23199, True)
    assert "s3cret" not in repr(settings)


def test_bad_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKREADY_APP_PORT", "eighty")
    with pytest.raises(PeakreadyError) as info:
        load_settings()
    assert len(info.value.lines) == 1
    assert info.value.lines[0].startswith("PEAKREADY_APP_PORT: ")


def test_sphinx_backend_needs_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKREADY_APP_SEARCH_BACKEND", "sphinx")
    with pytest.raises(PeakreadyError, match="PEAKREADY_APP_SEARCH_HOSTS: required"):
        load_settings()


def test_module_entry_point_prints_one_line_and_exits_2_on_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peakready.app"],
        env={"PEAKREADY_APP_SEARCH_BACKEND": "bogus", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("peakready-app: error: PEAKREADY_APP_SEARCH_BACKEND: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_query_words_strip_full_text_operators() -> None:
    assert query_words('"Widget" | @name -(17) !red') == "Widget name 17 red"
    assert query_words("((!") == ""


def test_seed_names_are_deterministic_and_searchable() -> None:
    assert [seed_name(i) for i in (1, 2, 9, 17)] == [
        "Widget 1 red",
        "Gadget 2 red",
        "Widget 9 blue",
        "Widget 17 green",
    ]
    assert seed_price(5) == seed_price(5) > 0


def test_index_config_declares_the_fed_columns() -> None:
    conf = sphinx_index_config("products", "/x/products")
    assert "type = rt" in conf
    assert "rt_field = name" in conf
    assert "rt_attr_string = title" in conf


def test_bounded_call_returns_within_the_bound_and_backs_off() -> None:
    runner = BoundedRunner(workers=2)
    guard = DependencyGuard("cache", timeout_s=0.2, backoff_s=0.5)
    release = threading.Event()
    try:
        start = time.monotonic()
        with pytest.raises(DependencyDown, match=r"no answer within 0\.20s"):
            runner.call(guard, lambda: release.wait(5))
        assert 0.15 < time.monotonic() - start < 0.5
        assert guard.degraded
        start = time.monotonic()
        with pytest.raises(DependencyDown, match="backing off"):
            runner.call(guard, lambda: "never called")
        assert time.monotonic() - start < 0.05
        time.sleep(0.55)
        assert not guard.backing_off
        assert guard.degraded  # still down as far as anyone knows, until a call succeeds
        assert runner.call(guard, lambda: "back") == "back"
        assert not guard.degraded
    finally:
        release.set()
        runner.shutdown()


def test_failing_call_marks_the_dependency_down() -> None:
    runner = BoundedRunner(workers=1)
    guard = DependencyGuard("search", timeout_s=1, backoff_s=5)

    def boom() -> None:
        raise ConnectionRefusedError("refused")

    try:
        with pytest.raises(DependencyDown, match="ConnectionRefusedError: refused"):
            runner.call(guard, boom)
        assert guard.degraded
        assert "refused" in guard.last_error
    finally:
        runner.shutdown()


def test_unreachable_database_at_start_is_one_line_and_exit_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peakready.app"],
        env={
            "PYTHONPATH": str(REPO),
            "PEAKREADY_APP_MIGRATE": "true",
            "PEAKREADY_APP_MIGRATE_TIMEOUT_S": "0.5",
            "PEAKREADY_APP_LOG_LEVEL": "error",
            "PEAKREADY_APP_DB_DSN": "host=127.0.0.1 port=23199 dbname=shop user=shop",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("peakready-app: error: migrations: database unavailable: ")
    assert "23199" in lines[0]


def test_probe_runs_once_at_a_time_and_updates_the_guard() -> None:
    runner = BoundedRunner(workers=4)
    guard = DependencyGuard("search", timeout_s=1, backoff_s=5)
    release = threading.Event()
    calls: list[int] = []

    def slow_failure() -> None:
        calls.append(1)
        release.wait(5)
        raise TimeoutError("frozen")

    try:
        runner.probe(guard, slow_failure)
        runner.probe(guard, slow_failure)  # skipped: one already in flight
        release.set()
        deadline = time.monotonic() + 2
        while not guard.degraded and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls == [1]
        assert guard.degraded and guard.backing_off
        runner.probe(guard, lambda: None)  # probes run during the back-off, and see recovery
        deadline = time.monotonic() + 2
        while guard.degraded and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not guard.degraded and not guard.backing_off
    finally:
        release.set()
        runner.shutdown()


def test_opensearch_backend_sends_a_match_query_and_reads_hits() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        hits = [{"_id": "17", "_source": {"name": "Widget 17 green", "price": 12.5}}]
        return httpx.Response(200, json={"hits": {"hits": hits}})

    runner = BoundedRunner(workers=1)
    guard = DependencyGuard("search", timeout_s=1, backoff_s=1)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    backend = OpenSearchSearch("https://search.example/", "products", runner, guard, 1, client)
    try:
        assert backend.search('widget "17"') == [
            {"id": 17, "name": "Widget 17 green", "price": 12.5}
        ]
    finally:
        runner.shutdown()
    assert str(seen[0].url) == "https://search.example/products/_search"
    body = json.loads(seen[0].content)
    assert body["query"]["match"]["name"]["query"] == "widget 17"


def test_opensearch_errors_mean_search_unavailable() -> None:
    runner = BoundedRunner(workers=1)
    guard = DependencyGuard("search", timeout_s=1, backoff_s=1)
    client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(503)))
    backend = OpenSearchSearch("https://search.example", "products", runner, guard, 1, client)
    try:
        with pytest.raises(DependencyDown, match="503"):
            backend.search("widget")
        assert guard.degraded
    finally:
        runner.shutdown()


def test_a_shed_search_is_answered_on_the_event_loop_not_behind_the_thread_pool() -> None:
    """The search route runs in the thread pool; a search past its budget must not wait
    there behind the requests the budget protects."""
    app = create_app(AppSettings(shed_search_at=1))
    sf = app.state.storefront

    async def search_while_every_thread_is_busy() -> httpx.Response:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        release = threading.Event()
        busy = asyncio.ensure_future(anyio.to_thread.run_sync(release.wait))
        await asyncio.sleep(0.05)
        sf.in_flight += 1  # another request in progress: the search is past its budget
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://storefront") as c:
                return await asyncio.wait_for(c.get("/search", params={"q": "lamp"}), 2.0)
        finally:
            sf.in_flight -= 1
            release.set()
            await busy

    answer = asyncio.run(search_while_every_thread_is_busy())
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json() == {"detail": "overloaded: search is shed, retry"}
    assert sf.metrics.registry.get_sample_value("storefront_shed_total", {"feature": "search"}) == 1


def test_health_checks_and_scrapes_do_not_count_in_the_shedding_budget() -> None:
    """Only shop requests fill the budget: a load balancer's check and a scrape on an
    instance serving 2 shop requests made it shed search at a budget of 3."""
    app = create_app(AppSettings(shed_search_at=1))
    sf = app.state.storefront
    seen: list[int] = []
    sf.update_gauges = lambda: seen.append(sf.in_flight)  # runs inside GET /metrics

    async def scrape() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://storefront") as c:
            return await c.get("/metrics")

    assert asyncio.run(scrape()).status_code == 200
    assert seen == [0]
