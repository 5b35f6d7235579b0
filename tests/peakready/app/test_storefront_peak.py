"""The storefront's part in a peak: a flash sale's set-up and the shedding budget."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

SHED_APP_PORT = 23107
WARM_APP_PORT, COLD_APP_PORT = 23108, 23109


def admin(url: str, token: str | None, product_id: int, units: int) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"product_id": product_id, "units": units}
    return httpx.post(f"{url}/admin/stock", json=body, headers=headers)


def buy(url: str, product_id: int) -> httpx.Response:
    return httpx.post(
        f"{url}/orders",
        json={"product_id": product_id, "quantity": 1},
        headers={"Idempotency-Key": f"t-{uuid.uuid4()}"},
    )


def test_a_flash_sale_puts_exactly_its_units_on_sale_and_the_audit_still_adds_up(
    app_server,
) -> None:
    url, token = app_server.url, app_server.audit_token
    assert admin(url, None, 15, 3).status_code == 401
    assert admin(url, "wrong", 15, 3).status_code == 401
    assert admin(url, token, 10**6, 3).status_code == 404
    assert admin(url, token, 15, -1).status_code == 422
    buy(url, 15)  # sold before the sale
    sale = admin(url, token, 15, 3).json()
    assert sale["stock"] == 3 and sale["sold"] >= 1
    assert sale["initial_stock"] == sale["sold"] + 3
    assert [buy(url, 15).status_code for _ in range(4)] == [201, 201, 201, 409]
    audit = httpx.post(
        f"{url}/audit",
        json={"idempotency_keys": []},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    product = next(p for p in audit["products"] if p["id"] == 15)
    assert product["stock"] == 0 and product["sold"] == product["initial_stock"]
    restored = admin(url, token, 15, sale["previous_stock"]).json()
    assert restored["previous_stock"] == 0 and restored["stock"] == sale["previous_stock"]


def test_past_its_budget_the_storefront_sheds_search_fast_and_never_orders(
    workdir: Path, postgres, redis_servers, searchd, app_server, extra_apps, helpers
) -> None:
    app = helpers.start_app(
        workdir, postgres, SHED_APP_PORT, redis_servers, searchd.port, shed_search_at="1"
    )
    extra_apps.append(app)

    async def burst(path: str, method: str = "GET", n: int = 30) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
            calls = [
                client.request(
                    method,
                    path,
                    json={"product_id": 3, "quantity": 1} if method == "POST" else None,
                    headers={"Idempotency-Key": f"t-{uuid.uuid4()}"} if method == "POST" else {},
                )
                for _ in range(n)
            ]
            return list(await asyncio.gather(*calls))

    searches = asyncio.run(burst("/search?q=Lamp"))
    assert {r.status_code for r in searches} <= {200, 503}
    shed = [r for r in searches if r.status_code == 503]
    assert shed, [r.status_code for r in searches]
    assert all(r.headers["Retry-After"] == "1" for r in shed)
    assert all("search is shed" in r.json()["detail"] for r in shed)
    assert "storefront_shed_total" in httpx.get(f"{app.url}/metrics").text
    # As many at once as the pool holds (10): an order waits for a connection, never
    # for a budget.
    orders = asyncio.run(burst("/orders", "POST", n=10))
    assert {r.status_code for r in orders} == {201}


def idle_connections(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    families = text_string_to_metric_families(text)
    family = next(f for f in families if f.name == "storefront_db_pool_connections")
    return {s.labels["pool"]: s.value for s in family.samples if s.labels["state"] == "idle"}


def test_a_new_instance_opens_its_connections_before_it_takes_traffic(
    workdir: Path, postgres, extra_apps, helpers
) -> None:
    """A scaled-out instance joins at the worst moment: cold, its first requests answered
    5-10x slower (connections opened on demand under a CPU quota). Warmed, each pool holds
    its connections before the instance listens; with the warm-up off, none but the one
    /readyz opened."""
    warm = helpers.start_app(workdir, postgres, WARM_APP_PORT, None, None, db_pool_warm="4")
    extra_apps.append(warm)
    cold = helpers.start_app(workdir, postgres, COLD_APP_PORT, None, None, db_pool_warm="0")
    extra_apps.append(cold)
    assert idle_connections(warm.url) == {"write": 4, "read": 4}
    assert idle_connections(cold.url) == {"write": 1, "read": 0}
