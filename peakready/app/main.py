"""The storefront HTTP app (DESIGN §4): orders, products, search, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from peakready.app import db
from peakready.app.cache import Cache, make_client
from peakready.app.guard import BoundedRunner, DependencyDown, DependencyGuard
from peakready.app.metrics import Metrics
from peakready.app.pool import PoolExhausted
from peakready.app.relay import Relay
from peakready.app.search import NoSearch, OpenSearchSearch, SearchBackend, SphinxSearch
from peakready.app.settings import AppSettings
from peakready.pipeline import parse_urls

log = logging.getLogger("peakready.app")

RETRY_AFTER_S = "1"


INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
KEY_MAX = 200
#: An order's body is a few dozen bytes; anything near this is not an order.
ORDER_BODY_MAX = 4096


class OrderIn(BaseModel):
    # Strict: JSON integers only; true, "1" and 1.0 are not quantities (DESIGN §4).
    model_config = ConfigDict(strict=True)

    product_id: int = Field(ge=1, le=INT4_MAX)
    quantity: int = Field(ge=1, le=1000)


class AuditIn(BaseModel):
    idempotency_keys: list[Annotated[str, Field(min_length=1, max_length=KEY_MAX)]] = Field(
        max_length=100_000
    )


#: Orders failing in a row with the database unavailable before the others fail fast.
WRITE_FAILURES_TO_TRIP = 3
SEARCH_SHED = "overloaded: search is shed, retry"
#: Health checks and scrapes: not shop traffic, so not counted in the shedding budget (a
#: load balancer's check and a scrape on an instance with 2 requests made it shed search).
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    product_id: int = Field(ge=1, le=2**31 - 1)
    units: int = Field(ge=0, le=1_000_000)


class Storefront:
    """The live dependencies of one instance."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        password = settings.db_password.get_secret_value() if settings.db_password else None
        # Orders (and reads that must see them) run on the event loop: no thread hand-off
        # on the hot path. Catalogue reads go to replicas first when there are any.
        self.write_pool = db.make_async_pool(
            settings.db_dsn,
            password,
            settings.db_pool_max,
            settings.db_pool_timeout_s,
            "write",
            settings.db_check_timeout_s,
            settings.db_trust_s,
        )
        self.read_pool = db.make_pool(
            settings.db_read_dsn or settings.db_dsn,
            password,
            settings.db_pool_max,
            settings.db_pool_timeout_s,
            "read",
            settings.db_check_timeout_s,
        )
        self.store = db.Store(
            self.write_pool,
            self.read_pool,
            replicas=bool(settings.db_read_dsn),
            query_timeout_s=settings.db_query_timeout_s,
            outbox=settings.queue_url is not None,
        )
        self.runner = BoundedRunner()
        timeout, backoff = settings.dependency_timeout_s, settings.dependency_backoff_s
        self.cache_guard = DependencyGuard("cache", timeout, backoff)
        self.search_guard = DependencyGuard("search", timeout, backoff)
        self.cache = Cache(
            make_client(settings), self.cache_guard, self.runner, settings.cache_ttl_s
        )
        self.search: SearchBackend = _make_search(settings, self.runner, self.search_guard)
        self.metrics = Metrics(settings.az, settings.instance_id)
        self.db_degraded = False
        self.write_guard = DependencyGuard("database writes", settings.db_query_timeout_s, 0.0)
        self.write_failures = 0  # in a row
        self.draining = False  # set by the first SIGTERM when DRAIN_S > 0
        self.in_flight = 0  # shop requests in progress (StorefrontAPI counts them)
        self.db_log = RateLimitedLog("database unavailable", every_s=5.0)
        self.relay: Relay | None = None

    def open(self) -> None:
        settings = self.settings
        password = settings.db_password.get_secret_value() if settings.db_password else None
        if settings.migrate:
            db.migrate(
                settings.db_dsn,
                password,
                settings.seed_products,
                settings.initial_stock,
                settings.migrate_timeout_s,
            )
        if settings.queue_url is not None and settings.queue_password is not None:
            self.relay = Relay(
                settings.db_dsn,
                password,
                parse_urls(settings.queue_url, "PEAKREADY_APP_QUEUE_URL"),
                settings.queue_password.get_secret_value(),
                settings.queue_name,
                self.metrics,
                settings.relay_batch,
            )
            self.relay.start()

    async def warm(self) -> None:
        """Before the instance takes traffic: open its database connections and walk each
        read path once (cache, search, catalogue). A cold instance answered its first
        requests 5-10x slower than a warm one (p50 70-110 ms against 12-20 ms at 0.2
        CPU), at the moment a scale-out needs it most. Bounded by ``warm_timeout_s``;
        what fails here is left to the first requests (a database that is down must not
        keep an instance from starting)."""
        count = self.settings.db_pool_warm
        if not count:
            return
        try:
            async with asyncio.timeout(self.settings.warm_timeout_s):
                await self.write_pool.warm(count)
                await run_in_threadpool(self._warm_reads, count)
        except TimeoutError:
            log.warning("warm-up: not done within %gs", self.settings.warm_timeout_s)

    def _warm_reads(self, count: int) -> None:
        self.read_pool.warm(count)
        self.cache.get("warm-up")
        with contextlib.suppress(DependencyDown, db.DatabaseUnavailable):
            self.store.get_product(1)
            self.store.products_by_ids([h["id"] for h in self.search.search("warm")] or [1])

    async def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        self.runner.shutdown()
        await self.write_pool.close()
        self.read_pool.close()

    def over_budget(self, feature: str) -> bool:
        """Whether ``feature`` ("search", "reads") is shed now: more requests in progress
        than its budget (the request asking counts itself)."""
        limit = self.settings.shed_search_at if feature == "search" else self.settings.shed_reads_at
        if limit and self.in_flight > limit:
            self.metrics.shed.labels(feature).inc()
            return True
        return False

    def database_unavailable(self, exc: db.DatabaseUnavailable) -> JSONResponse:
        self.db_degraded = True
        self.db_log.warn(" ".join(str(exc).split()))
        return unavailable("database unavailable, retry with the same Idempotency-Key")

    async def create_order(
        self, key: str | None, body: bytes, synthetic: str | None = None
    ) -> JSONResponse:
        """``POST /orders``: one order, idempotent per key (DESIGN §4). ``synthetic``: the
        ``X-Peakready-Synthetic`` header, the audit token of a checkout probe; its order
        is left out of the business figures and of the back office."""
        if key is None or not 1 <= len(key) <= KEY_MAX:
            return _invalid("header", "idempotency-key", f"required, 1 to {KEY_MAX} characters")
        if synthetic is not None and not self.is_probe(synthetic):
            return _error(401, "X-Peakready-Synthetic: expected the audit token")
        try:
            order = OrderIn.model_validate_json(body)
        except ValidationError as exc:
            return JSONResponse({"detail": _body_errors(exc)}, status_code=422)
        if synthetic is not None and order.product_id != db.SYNTHETIC_PRODUCT_ID:
            return _invalid("body", "product_id", f"{db.SYNTHETIC_PRODUCT_ID} for a probe")
        # Fail fast while the primary is out: one order at a time tries the database
        # (the probe that finds it back); the others get a 503 at once instead of each
        # holding a connection slot for seconds on a server that does not answer.
        guard = self.write_guard
        probing = guard.degraded and guard.start_probe()
        if guard.degraded and not probing:
            return unavailable("database unavailable, retry with the same Idempotency-Key")
        try:
            result = await self.store.place_order(
                key, order.product_id, order.quantity, synthetic is not None
            )
        except db.DatabaseUnavailable as exc:
            # Busy here (a full pool) is not down there; and one slow answer is not an
            # outage: the guard trips on the third failure in a row.
            if not isinstance(exc.__cause__, PoolExhausted):
                self.write_failures += 1
                if self.write_failures >= WRITE_FAILURES_TO_TRIP or probing:
                    guard.mark_down(str(exc))
            return self.database_unavailable(exc)
        except db.UnknownProduct:
            guard.mark_up()  # the database answered
            return _error(404, f"no product {order.product_id}")
        except db.OutOfStock:
            guard.mark_up()
            return _error(409, f"not enough stock for product {order.product_id}")
        except db.KeyReused:
            guard.mark_up()
            return _error(422, "Idempotency-Key already used for a different order")
        finally:
            if probing:
                guard.end_probe()
        guard.mark_up()
        self.write_failures = 0
        self.db_degraded = False
        if result.created and synthetic is not None:
            self.metrics.synthetic_orders.inc()
        elif result.created:
            self.metrics.orders_created.inc()
            self.cache.delete(f"product:{order.product_id}", "products:all")
        else:
            self.metrics.order_replays.inc()
        return JSONResponse(db.to_json(result.order), status_code=201 if result.created else 200)

    def is_probe(self, token: str) -> bool:
        expected = self.settings.audit_token
        return expected is not None and hmac.compare_digest(
            token.encode(), expected.get_secret_value().encode()
        )

    def update_gauges(self) -> None:
        for pool in (self.write_pool, self.read_pool):
            self.metrics.db_pool.labels(pool.name, "in_use").set(pool.in_use)
            self.metrics.db_pool.labels(pool.name, "idle").set(pool.idle)
        self.metrics.degraded.labels("database").set(int(self.db_degraded))
        self.metrics.degraded.labels("cache").set(
            int(self.cache.enabled and self.cache_guard.degraded)
        )
        self.metrics.degraded.labels("search").set(
            int(self.search.name != "none" and self.search_guard.degraded)
        )


def _make_search(
    settings: AppSettings, runner: BoundedRunner, guard: DependencyGuard
) -> SearchBackend:
    timeout, backoff = settings.dependency_timeout_s, settings.dependency_backoff_s
    if settings.search_backend == "sphinx":
        return SphinxSearch(
            settings.search_addresses(), settings.search_index, runner, guard, timeout, backoff
        )
    if settings.search_backend == "opensearch" and settings.opensearch_url:
        return OpenSearchSearch(
            settings.opensearch_url, settings.search_index, runner, guard, timeout
        )
    return NoSearch()


class RateLimitedLog:
    """One warning line per interval, with the count of those left out (outages are noisy)."""

    def __init__(self, what: str, every_s: float) -> None:
        self.what = what
        self.every_s = every_s
        self._next = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warn(self, detail: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._next = self._suppressed, 0, now + self.every_s
        more = f" (+{suppressed} more in the last {self.every_s:.0f}s)" if suppressed else ""
        log.warning("%s: %s%s", self.what, detail, more)


class ObserveMiddleware:
    """Count and time every request by route template, method and status (plain ASGI)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children, looked up once per label set (a lookup costs more than
        # the increment; the label sets are few: routes x methods x statuses).
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            labels = (_route_path(scope), scope["method"], str(status))
            children = self._children.get(labels)
            if children is None:
                children = (
                    self.metrics.requests.labels(*labels),
                    self.metrics.latency.labels(*labels),
                )
                self._children[labels] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)


def _route_path(scope: Scope) -> str:
    """The matched route's path template, recorded in the (shared) scope: FastAPI routes
    leave the route; plain routes and the ``/orders`` fast path (no path parameters) the
    endpoint."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    return str(scope["path"]) if scope.get("endpoint") is not None else "unmatched"


class StorefrontAPI(FastAPI):
    """The FastAPI app, with ``/orders`` (the hot path) served ahead of its stack.

    Starlette's middleware layers, router and request objects cost a fifth of an order's
    CPU (0.52-0.58 against 0.42-0.48 ms on the lab), and the order route needs none of
    them. Its contract is a FastAPI route's all the same: 422 bodies in FastAPI's shape,
    ``{"detail": ...}`` errors, 405 for other methods, metrics under the route "/orders".
    """

    def __init__(self, sf: Storefront, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._orders = ObserveMiddleware(self._serve_orders, sf.metrics)
        self._search_shed = ObserveMiddleware(self._answer_search_shed, sf.metrics)
        self._sf = sf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await super().__call__(scope, receive, send)
            return
        self._sf.in_flight += 1
        try:
            if scope["path"] == "/orders":
                await self._orders(scope, receive, send)
            elif scope["path"] == "/search" and self._sheds_search(scope):
                # Shed on the event loop: the search route runs in the thread pool, and
                # under load a shed answer waited there behind the requests it protects
                # (search 503s p99 154 ms against product 503s 44 ms at 2x).
                await self._search_shed(scope, receive, send)
            else:
                await super().__call__(scope, receive, send)
        finally:
            self._sf.in_flight -= 1

    def _sheds_search(self, scope: Scope) -> bool:
        return scope["method"] == "GET" and self._sf.over_budget("search")

    async def _answer_search_shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["endpoint"] = self._answer_search_shed  # matched: labelled by its path
        await unavailable(SEARCH_SHED)(scope, receive, send)

    async def _serve_orders(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["endpoint"] = self._sf.create_order  # matched: labelled by its path
        if scope["method"] != "POST":
            await _error(405, "Method Not Allowed", {"Allow": "POST"})(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not _is_json(headers.get("content-type", "")):
            await _error(415, "expected Content-Type: application/json")(scope, receive, send)
            return
        key = headers.get("idempotency-key")
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > ORDER_BODY_MAX:
                response = _error(413, f"request body over {ORDER_BODY_MAX} bytes")
                break
        else:
            synthetic = headers.get("x-peakready-synthetic")
            response = await self._sf.create_order(key, body, synthetic)
        await response(scope, receive, send)


def _is_json(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type, whatever its parameters (charset)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _invalid(where: str, name: str, msg: str) -> JSONResponse:
    """A 422 in FastAPI's shape for one bad request field."""
    return JSONResponse({"detail": [{"loc": [where, name], "msg": msg}]}, status_code=422)


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def unavailable(detail: str) -> JSONResponse:
    return _error(503, detail, {"Retry-After": RETRY_AFTER_S})


def _publish_to_cloudwatch(sf: Storefront, settings: AppSettings) -> asyncio.Task[None] | None:
    """On AWS (``cloudwatch_region`` set): the custom metrics the alarms read, published
    in the background (peakready.app.cloudwatch)."""
    if not settings.cloudwatch_region:
        return None
    # Imported here: boto3 only on AWS.
    import boto3

    from peakready.app.cloudwatch import Publisher

    client = boto3.client("cloudwatch", region_name=settings.cloudwatch_region)
    return asyncio.create_task(Publisher(sf.metrics, settings.stack, client).run())


def create_app(settings: AppSettings) -> FastAPI:
    """The ASGI app; dependencies are opened in the lifespan (migrations first if asked)."""
    sf = Storefront(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sf.open()
        await sf.warm()
        publishing = _publish_to_cloudwatch(sf, settings)
        try:
            yield
        finally:
            if publishing is not None:
                publishing.cancel()
            await sf.close()

    # Metrics are Prometheus (below); FastAPI's native OpenTelemetry would only look up
    # the (unconfigured) providers on every request.
    no_otel: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    # The API's docs are off unless asked for (PEAKREADY_APP_DOCS): nothing a shopper needs.
    docs = {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = StorefrontAPI(
        sf, title="peakready storefront", lifespan=lifespan, telemetry=no_otel, **docs
    )
    app.state.storefront = sf

    app.add_middleware(ObserveMiddleware, metrics=sf.metrics)

    @app.exception_handler(db.DatabaseUnavailable)
    async def db_unavailable(_: Request, exc: db.DatabaseUnavailable) -> JSONResponse:
        return sf.database_unavailable(exc)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "alive", "az": settings.az, "instance": settings.instance_id}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body: dict[str, Any] = {"az": settings.az, "instance": settings.instance_id}
        if sf.draining:
            body.update(status="draining")
            return JSONResponse(body, status_code=503)
        timeout_s = min(settings.ready_check_timeout_s, settings.db_pool_timeout_s)
        degraded = []
        try:
            # Bounded as a whole, opening a connection included: a server that hangs (its
            # AZ lost) must not make this answer later than the load balancer waits.
            async with asyncio.timeout(timeout_s):
                await sf.store.ping(timeout_s=timeout_s)
            sf.db_degraded = False
            body["database"] = "ok"
        except (db.DatabaseUnavailable, TimeoutError) as exc:
            sf.db_degraded = True
            reason = " ".join(str(exc).split()) or f"no answer within {timeout_s:g} s"
            # No primary (mid-failover): with replicas for reads the instance still serves
            # the catalogue and answers orders with a fast 503, so it stays in rotation —
            # readiness that fails on a shared dependency takes the whole fleet out at once.
            # A database that does not answer in time is no reason to leave either.
            reads = await _reads_answer(timeout_s) if sf.store.has_read_pool else False
            if reads is False:
                body.update(status="unready", database="unavailable: " + reason)
                return JSONResponse(body, status_code=503)
            body["database"] = "writes unavailable: " + reason
            degraded.append("writes")
        # Optional dependencies: report what is known, refresh it in the background.
        if sf.cache.enabled:
            sf.runner.probe(sf.cache_guard, sf.cache.check)
            if sf.cache_guard.degraded:
                degraded.append("cache")
        if sf.search.name != "none":
            sf.runner.probe(sf.search_guard, sf.search.check)
            if sf.search_guard.degraded:
                degraded.append("search")
        body.update(status="degraded" if degraded else "ready", degraded=degraded)
        return JSONResponse(body)

    async def _reads_answer(timeout_s: float) -> bool | None:
        """Whether reads work: True, False (they fail), None (no answer in time)."""
        try:
            return await asyncio.wait_for(run_in_threadpool(_reads_work, timeout_s), timeout_s)
        except TimeoutError:
            return None

    def _reads_work(timeout_s: float) -> bool:
        try:
            sf.store.ping_read(timeout_s=timeout_s)
        except db.DatabaseUnavailable:
            return False
        return True

    @app.get("/metrics")
    def metrics() -> Response:
        sf.update_gauges()
        return Response(generate_latest(sf.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/products")
    def list_products() -> Any:
        cached = sf.cache.get("products:all")
        if cached is not None:
            return cached
        products = [db.to_json(p) for p in sf.store.list_products()]
        sf.cache.set("products:all", products)
        return products

    @app.get("/products/{product_id}")
    def get_product(product_id: int) -> Any:
        if not 1 <= product_id <= INT4_MAX:
            raise HTTPException(404, f"no product {product_id}")
        key = f"product:{product_id}"
        cached = sf.cache.get(key)
        if cached is not None:
            return cached
        if sf.over_budget("reads"):
            return unavailable("overloaded: uncached product reads are shed, retry")
        product = sf.store.get_product(product_id)
        if product is None:
            raise HTTPException(404, f"no product {product_id}")
        body = db.to_json(product)
        sf.cache.set(key, body)
        return body

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> Any:
        if not 1 <= order_id <= INT8_MAX:
            raise HTTPException(404, f"no order {order_id}")
        row = await sf.store.get_order(order_id)
        if row is None:
            raise HTTPException(404, f"no order {order_id}")
        return db.to_json(row)

    @app.get("/search")
    def search(q: str = "") -> Any:
        try:
            hits = sf.search.search(q)
        except DependencyDown as exc:
            return unavailable(f"search unavailable: {exc}")
        if not hits:
            return []
        try:
            current = {
                p["id"]: db.to_json(p) for p in sf.store.products_by_ids([h["id"] for h in hits])
            }
        except db.DatabaseUnavailable:
            current = {}  # the index alone still answers; stock unknown
        return [current.get(h["id"], {**h, "stock": None}) for h in hits]

    def require_token(authorization: str | None) -> None:
        """The drill's endpoints answer only with the audit token (404 when it is unset)."""
        token = settings.audit_token.get_secret_value() if settings.audit_token else None
        if not token:
            raise HTTPException(404, "audit is not enabled on this instance")
        expected = f"Bearer {token}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "bearer token required", {"WWW-Authenticate": "Bearer"})

    @app.post("/audit")
    async def audit(body: AuditIn, authorization: Annotated[str | None, Header()] = None) -> Any:
        require_token(authorization)
        return await sf.store.audit(body.idempotency_keys)

    @app.post("/admin/stock")
    async def set_stock(
        body: StockIn, authorization: Annotated[str | None, Header()] = None
    ) -> Any:
        """A flash sale's set-up: ``units`` of the product on sale from now on (its
        initial stock becomes what it sold so far plus ``units``, so the audit still
        counts oversold units exactly)."""
        require_token(authorization)
        found = await sf.store.set_stock(body.product_id, body.units)
        if found is None:
            raise HTTPException(404, f"product {body.product_id} not found")
        return found

    return app
