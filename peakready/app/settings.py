"""Settings of the storefront app, read from ``PEAKREADY_APP_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from peakready.errors import PeakreadyError, env_error
from peakready.pipeline import parse_urls


class AppSettings(BaseSettings):
    """Everything one storefront instance needs; see docs/internals.md, "The storefront app"."""

    model_config = SettingsConfigDict(
        env_prefix="PEAKREADY_APP_", extra="ignore", env_ignore_empty=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    az: str = "local"
    instance_id: str = "app-0"
    # On AWS: publish the order and dependency figures the stack's alarms read
    # (peakready.app.cloudwatch) to CloudWatch in this region, dimension Stack=stack.
    cloudwatch_region: str | None = None
    stack: str = "dev"

    db_dsn: str = "host=127.0.0.1 port=5432 dbname=shop user=shop connect_timeout=2"
    db_read_dsn: str | None = None
    db_password: SecretStr | None = None
    db_pool_max: int = Field(10, ge=1)
    db_pool_timeout_s: float = Field(5.0, gt=0)
    # Warm-up before the instance listens: this many connections per pool opened, each
    # read path walked once, within warm_timeout_s (0: start cold).
    db_pool_warm: int = Field(4, ge=0, le=100)
    warm_timeout_s: float = Field(3.0, gt=0, le=60)
    db_check_timeout_s: float = Field(1.0, gt=0)
    # Each database check of /readyz (the primary, then the replicas) gets this long:
    # both together must stay below the load balancer's health-check timeout (HAProxy
    # 1 s, ALB 5 s), or a primary that hangs (its AZ lost) takes every instance out.
    ready_check_timeout_s: float = Field(0.3, gt=0, le=10)
    db_trust_s: float = Field(0.1, ge=0, le=1.0)
    db_query_timeout_s: float = Field(3.0, gt=0)

    redis_sentinels: str | None = None
    redis_master: str = "peakready"
    redis_url: str | None = None
    redis_password: SecretStr | None = None
    redis_sentinel_password: SecretStr | None = None
    cache_ttl_s: int = Field(2, ge=1)

    search_backend: Literal["sphinx", "opensearch", "none"] = "none"
    search_hosts: str = ""
    search_index: str = "products"
    opensearch_url: str | None = None

    audit_token: SecretStr | None = None

    # The order pipeline (peakready.pipeline): with a queue, each order writes an outbox
    # row and this instance runs a relay to the broker.
    queue_url: str | None = None
    queue_name: str = "orders"
    queue_password: SecretStr | None = None
    relay_batch: int = Field(200, ge=1, le=10000)

    dependency_timeout_s: float = Field(0.5, gt=0)
    dependency_backoff_s: float = Field(2.0, ge=0)

    docs: bool = False  # serve /docs, /redoc and /openapi.json
    migrate: bool = False
    migrate_timeout_s: float = Field(60.0, gt=0)
    seed_products: int = Field(100, ge=0)
    initial_stock: int = Field(1000, ge=0)

    # Business-level degradation: past this many requests in progress on this instance,
    # search answers a fast 503, then (past SHED_READS_AT) product reads the cache cannot
    # serve; orders never. 0 turns a rule off.
    shed_search_at: int = Field(0, ge=0, le=100000)
    shed_reads_at: int = Field(0, ge=0, le=100000)
    drain_s: float = Field(0.0, ge=0, le=120)
    log_level: str = "warning"

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``REDIS_SENTINELS`` as (host, port) pairs."""
        return parse_hosts(self.redis_sentinels or "", "PEAKREADY_APP_REDIS_SENTINELS")

    def search_addresses(self) -> list[tuple[str, int]]:
        """``SEARCH_HOSTS`` as (host, port) pairs, in the order they are tried."""
        return parse_hosts(self.search_hosts, "PEAKREADY_APP_SEARCH_HOSTS")


def parse_hosts(value: str, name: str) -> list[tuple[str, int]]:
    """Parse ``host:port,host:port``; a bad entry is a one-line error naming the variable."""
    out: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise PeakreadyError(f"{name}: expected host:port[,host:port…], got {item!r}")
        out.append((host, int(port)))
    return out


def load_settings() -> AppSettings:
    """Read the settings from the environment; a bad value is a one-line error."""
    try:
        settings = AppSettings()
    except ValidationError as exc:
        raise env_error(exc, "PEAKREADY_APP_") from None
    settings.sentinel_addresses()
    settings.search_addresses()
    if settings.queue_url is not None:
        parse_urls(settings.queue_url, "PEAKREADY_APP_QUEUE_URL")
        if settings.queue_password is None:
            raise PeakreadyError("PEAKREADY_APP_QUEUE_PASSWORD: required with QUEUE_URL")
    if settings.search_backend == "sphinx" and not settings.search_hosts:
        raise PeakreadyError("PEAKREADY_APP_SEARCH_HOSTS: required when SEARCH_BACKEND=sphinx")
    if settings.search_backend == "opensearch" and not settings.opensearch_url:
        raise PeakreadyError(
            "PEAKREADY_APP_OPENSEARCH_URL: required when SEARCH_BACKEND=opensearch"
        )
    return settings
