"""The storefront app against real PostgreSQL, Redis + Sentinel and searchd servers."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest
import redis
from redis.sentinel import Sentinel

from peakready.app.db import SYNTHETIC_PRODUCT_ID, seed_name

if TYPE_CHECKING:
    from conftest import App, Postgres, Redis

pytestmark = pytest.mark.lab


def key() -> str:
    return f"test-{uuid.uuid4()}"


def order(url: str, product_id: int, quantity: int = 1, k: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": k} if k is not None else {}
    return httpx.post(
        f"{url}/orders",
        json={"product_id": product_id, "quantity": quantity},
        headers=headers,
        timeout=15,
    )


def set_stock(postgres: Postgres, product_id: int, stock: int) -> None:
    postgres.execute("UPDATE products SET stock = %s WHERE id = %s", (stock, product_id))


def stock_of(postgres: Postgres, product_id: int) -> int:
    return postgres.execute("SELECT stock FROM products WHERE id = %s", (product_id,))[0][0]


def test_healthz_reports_az_and_instance(app_server: App) -> None:
    response = httpx.get(f"{app_server.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive", "az": "test-az-a", "instance": "app-test-0"}


def test_readyz_is_ready_with_all_dependencies_up(app_server: App) -> None:
    response = httpx.get(f"{app_server.url}/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["degraded"] == []


def test_seed_catalogue_has_deterministic_names(app_server: App) -> None:
    products = httpx.get(f"{app_server.url}/products").json()
    assert [p["id"] for p in products] == list(range(1, app_server.seed_products + 1))
    assert products[16]["name"] == seed_name(17) == "Widget 17 green"
    assert set(products[0]) == {"id", "name", "price", "stock"}
    assert isinstance(products[0]["price"], float)


@pytest.mark.parametrize("product_id", ["99999", "0", "-3", str(2**31), str(2**70)])
def test_unknown_product_is_404(app_server: App, product_id: str) -> None:
    assert httpx.get(f"{app_server.url}/products/{product_id}").status_code == 404


def cache_client(redis_servers: Redis) -> redis.Redis:
    sentinel = Sentinel([("127.0.0.1", redis_servers.sentinel.port)], socket_timeout=1)
    client: redis.Redis = sentinel.master_for(
        redis_servers.master_name, password=redis_servers.password
    )
    return client


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_product_read_fills_the_cache(app_server: App, redis_servers: Redis) -> None:
    assert httpx.get(f"{app_server.url}/products/3").status_code == 200
    client = cache_client(redis_servers)
    deadline = time.monotonic() + 2
    while client.get("product:3") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b'"name": "Gizmo 3 red"' in client.get("product:3")


def test_order_refreshes_the_cached_stock(app_server: App, postgres: Postgres) -> None:
    before = httpx.get(f"{app_server.url}/products/4").json()["stock"]
    time.sleep(0.1)  # let the cache fill land first
    assert order(app_server.url, 4, 3, key()).status_code == 201
    deadline = time.monotonic() + 2
    seen = before
    while seen != before - 3 and time.monotonic() < deadline:
        seen = httpx.get(f"{app_server.url}/products/4").json()["stock"]
        time.sleep(0.02)
    assert seen == before - 3 == stock_of(postgres, 4)


def test_invalidations_of_an_order_burst_are_coalesced(
    app_server: App, redis_servers: Redis
) -> None:
    client = cache_client(redis_servers)

    def deletes() -> int:
        return int(client.info("commandstats").get("cmdstat_del", {}).get("calls", 0))

    assert httpx.get(f"{app_server.url}/products/6").status_code == 200
    assert eventually(lambda: client.get("product:6") is not None)
    before = deletes()
    with ThreadPoolExecutor(10) as pool:
        statuses = list(
            pool.map(lambda _: order(app_server.url, 6, 1, key()).status_code, range(40))
        )
    assert statuses == [201] * 40
    assert eventually(lambda: client.get("product:6") is None, timeout=1.0)
    time.sleep(0.2)  # the last flush
    assert 1 <= deletes() - before <= 20  # one DEL per order would be 40


def test_same_key_twice_gives_one_order(app_server: App, postgres: Postgres) -> None:
    k = key()
    first = order(app_server.url, 1, 2, k)
    second = order(app_server.url, 1, 2, k)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert set(first.json()) == {"id", "product_id", "quantity", "created_at"}
    rows = postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,))
    assert rows == [(1,)]


def test_concurrent_retries_of_one_key_give_one_order(app_server: App, postgres: Postgres) -> None:
    k = key()
    stock = stock_of(postgres, 2)
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: order(app_server.url, 2, 1, k), range(20)))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: 19}
    assert len({r.json()["id"] for r in responses}) == 1
    rows = postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,))
    assert rows == [(1,)]
    assert stock_of(postgres, 2) == stock - 1


def test_fifty_buyers_for_ten_units_never_oversell(app_server: App, postgres: Postgres) -> None:
    set_stock(postgres, 5, 10)
    sold_before = postgres.execute("SELECT count(*) FROM orders WHERE product_id = 5")[0][0]
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: order(app_server.url, 5, 1, key()), range(50)))
    assert Counter(r.status_code for r in responses) == {201: 10, 409: 40}
    assert stock_of(postgres, 5) == 0
    sold_after = postgres.execute("SELECT count(*) FROM orders WHERE product_id = 5")[0][0]
    assert sold_after - sold_before == 10


def test_order_larger_than_stock_is_409_and_changes_nothing(
    app_server: App, postgres: Postgres
) -> None:
    set_stock(postgres, 6, 2)
    k = key()
    response = order(app_server.url, 6, 3, k)
    assert response.status_code == 409
    assert stock_of(postgres, 6) == 2
    assert postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,)) == [
        (0,)
    ]


def test_order_without_idempotency_key_is_422(app_server: App) -> None:
    response = order(app_server.url, 1, 1, None)
    assert response.status_code == 422
    assert "idempotency-key" in response.text.lower()


@pytest.mark.parametrize(
    "body",
    [
        {"product_id": 1, "quantity": 0},
        {"quantity": 1},
        {"product_id": "x", "quantity": 1},
        {"product_id": 2**31, "quantity": 1},
        {"product_id": 1, "quantity": 10**6},
        [],
    ],
)
def test_malformed_order_is_422(app_server: App, body: object) -> None:
    response = httpx.post(f"{app_server.url}/orders", json=body, headers={"Idempotency-Key": key()})
    assert response.status_code == 422


def test_bad_order_field_is_named_in_fastapis_422_shape(app_server: App) -> None:
    response = httpx.post(
        f"{app_server.url}/orders",
        json={"product_id": 1, "quantity": 0},
        headers={"Idempotency-Key": key()},
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "quantity"]


def test_order_sent_in_chunks_is_placed_once(app_server: App, postgres: Postgres) -> None:
    k = key()

    def chunks() -> Iterator[bytes]:
        yield b'{"product_id": 11, '
        yield b'"quantity": 1}'

    response = httpx.post(
        f"{app_server.url}/orders",
        content=chunks(),
        headers={"Idempotency-Key": k, "Content-Type": "application/json"},
    )
    assert response.status_code == 201
    assert response.json()["product_id"] == 11
    rows = postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,))
    assert rows == [(1,)]


def test_oversized_order_body_is_413_and_places_nothing(
    app_server: App, postgres: Postgres
) -> None:
    k = key()
    body = b'{"product_id": 11, "quantity": 1' + b" " * 5000 + b"}"
    response = httpx.post(
        f"{app_server.url}/orders",
        content=body,
        headers={"Idempotency-Key": k, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    rows = postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,))
    assert rows == [(0,)]


def test_other_methods_on_orders_are_405(app_server: App) -> None:
    response = httpx.get(f"{app_server.url}/orders")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_order_for_unknown_product_is_404(app_server: App) -> None:
    response = order(app_server.url, 99999, 1, key())
    assert response.status_code == 404
    assert "no product 99999" in response.text


def test_key_reused_for_another_order_is_422(app_server: App) -> None:
    k = key()
    assert order(app_server.url, 7, 1, k).status_code == 201
    response = order(app_server.url, 7, 2, k)
    assert response.status_code == 422
    assert "different order" in response.text


def test_order_is_readable_right_after_it_is_acknowledged(app_server: App) -> None:
    created = order(app_server.url, 8, 1, key()).json()
    response = httpx.get(f"{app_server.url}/orders/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("order_id", ["987654321", str(2**63), "0"])
def test_unknown_order_is_404(app_server: App, order_id: str) -> None:
    assert httpx.get(f"{app_server.url}/orders/{order_id}").status_code == 404


def test_search_finds_a_seeded_product_by_name(app_server: App) -> None:
    response = httpx.get(f"{app_server.url}/search", params={"q": "widget 17 green"})
    assert response.status_code == 200
    hits = response.json()
    assert hits[0]["id"] == 17
    assert hits[0]["name"] == "Widget 17 green"
    assert isinstance(hits[0]["stock"], int)


def test_search_ignores_query_operators(app_server: App) -> None:
    response = httpx.get(f"{app_server.url}/search", params={"q": '"Gadget" | @ -(( !'})
    assert response.status_code == 200
    assert response.json() and all("Gadget" in hit["name"] for hit in response.json())


def test_audit_requires_the_bearer_token(app_server: App) -> None:
    body = {"idempotency_keys": ["x"]}
    assert httpx.post(f"{app_server.url}/audit", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{app_server.url}/audit", json=body, headers=wrong).status_code == 401


def test_audit_reports_present_and_missing_keys_and_sold_units(
    app_server: App, postgres: Postgres
) -> None:
    present, missing = key(), key()
    created = order(app_server.url, 9, 4, present).json()
    response = httpx.post(
        f"{app_server.url}/audit",
        json={"idempotency_keys": [present, missing]},
        headers={"Authorization": f"Bearer {app_server.audit_token}"},
    )
    assert response.status_code == 200
    audit = response.json()
    assert audit["orders"][present] == {"id": created["id"], "product_id": 9, "quantity": 4}
    assert audit["orders"][missing] is None
    assert audit["orders_per_key"] == {present: 1, missing: 0}
    products = {p["id"]: p for p in audit["products"]}
    assert len(products) == app_server.seed_products
    sold = postgres.execute("SELECT coalesce(sum(quantity), 0) FROM orders WHERE product_id = 9")
    assert products[9]["sold"] == sold[0][0] >= 4
    assert products[9]["initial_stock"] == app_server.initial_stock
    assert products[9]["stock"] == stock_of(postgres, 9)


def test_metrics_count_requests_by_route_and_orders(app_server: App) -> None:
    order(app_server.url, 10, 1, key())
    text = httpx.get(f"{app_server.url}/metrics").text
    assert 'storefront_http_requests_total{method="POST",route="/orders",status="201"}' in text
    assert "storefront_orders_created_total" in text
    assert 'storefront_dependency_degraded{dependency="cache"} 0.0' in text
    assert "storefront_http_request_duration_seconds_bucket" in text
    assert 'storefront_db_pool_connections{pool="write",state="idle"}' in text


@pytest.mark.parametrize(
    "body",
    [
        {"product_id": 1, "quantity": True},
        {"product_id": True, "quantity": 1},
        {"product_id": "1", "quantity": "1"},
        {"product_id": 1, "quantity": 1.0},
        {"product_id": 1.5, "quantity": 1},
        {"product_id": None, "quantity": 1},
    ],
)
def test_order_fields_are_strict_json_integers(
    app_server: App, postgres: Postgres, body: object
) -> None:
    k = key()
    response = httpx.post(f"{app_server.url}/orders", json=body, headers={"Idempotency-Key": k})
    assert response.status_code == 422
    rows = postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,))
    assert rows == [(0,)]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "", "json"]
)
def test_an_order_body_that_is_not_declared_json_is_415(
    app_server: App, postgres: Postgres, content_type: str
) -> None:
    k = key()
    headers = {"Idempotency-Key": k, "Content-Type": content_type}
    response = httpx.post(
        f"{app_server.url}/orders", content=b'{"product_id": 11, "quantity": 1}', headers=headers
    )
    assert response.status_code == 415
    rows = postgres.execute("SELECT count(*) FROM orders WHERE idempotency_key = %s", (k,))
    assert rows == [(0,)]


def test_json_with_a_charset_or_a_json_suffix_is_accepted(app_server: App) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = httpx.post(
            f"{app_server.url}/orders",
            content=b'{"product_id": 11, "quantity": 1}',
            headers={"Idempotency-Key": key(), "Content-Type": content_type},
        )
        assert response.status_code == 201, content_type


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_the_api_docs_are_off_unless_asked_for(app_server: App, path: str) -> None:
    assert httpx.get(f"{app_server.url}{path}").status_code == 404


def counter(app_server: App, name: str) -> float:
    text = httpx.get(f"{app_server.url}/metrics").text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def synthetic(
    app_server: App, token: str, product_id: int = SYNTHETIC_PRODUCT_ID
) -> httpx.Response:
    return httpx.post(
        f"{app_server.url}/orders",
        json={"product_id": product_id, "quantity": 1},
        headers={"Idempotency-Key": key(), "X-Peakready-Synthetic": token},
        timeout=15,
    )


def test_a_probes_order_is_placed_and_left_out_of_the_business_figures(app_server: App) -> None:
    created = counter(app_server, "storefront_orders_created_total")
    probes = counter(app_server, "storefront_synthetic_orders_total")
    answer = synthetic(app_server, app_server.audit_token)
    assert answer.status_code == 201, answer.text
    assert httpx.get(f"{app_server.url}/orders/{answer.json()['id']}").status_code == 200
    assert counter(app_server, "storefront_synthetic_orders_total") == probes + 1
    assert counter(app_server, "storefront_orders_created_total") == created
    assert order(app_server.url, 10, k=key()).status_code == 201  # a customer's counts
    assert counter(app_server, "storefront_orders_created_total") == created + 1


def test_a_probe_flag_without_the_audit_token_or_for_a_real_product_is_refused(
    app_server: App, postgres: Postgres
) -> None:
    before = postgres.execute("SELECT count(*) FROM orders")[0][0]
    wrong = synthetic(app_server, "not-the-token")
    assert wrong.status_code == 401
    assert "X-Peakready-Synthetic" in wrong.json()["detail"]
    real = synthetic(app_server, app_server.audit_token, product_id=5)
    assert real.status_code == 422
    assert real.json()["detail"][0]["loc"] == ["body", "product_id"]
    assert postgres.execute("SELECT count(*) FROM orders")[0][0] == before
