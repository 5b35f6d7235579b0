"""Cache-aside through Redis: Sentinel-discovered primary in the lab, a URL on AWS.

Every call is bounded by the dependency timeout and skipped while Redis is remembered as
down, so the cache can only ever speed requests up, never stall or fail them.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from redis.sentinel import Sentinel

from peakready.app.guard import BoundedRunner, DependencyDown, DependencyGuard
from peakready.app.settings import AppSettings


class Cache:
    """JSON values under string keys with a TTL; ``None`` means "miss or unavailable"."""

    def __init__(
        self, client: redis.Redis | None, guard: DependencyGuard, runner: BoundedRunner, ttl_s: int
    ) -> None:
        self.client = client
        self.guard = guard
        self.runner = runner
        self.ttl_s = ttl_s

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def get(self, key: str) -> Any | None:
        client = self.client
        if client is None:
            return None
        try:
            raw = self.runner.call(self.guard, lambda: client.get(key))
        except DependencyDown:
            return None
        return json.loads(raw) if isinstance(raw, bytes | str) else None

    def set(self, key: str, value: Any) -> None:
        """Store in the background: the caller already has its answer."""
        client = self.client
        if client is None:
            return
        payload = json.dumps(value)
        self.runner.fire(self.guard, lambda: client.set(key, payload, ex=self.ttl_s))

    def delete(self, *keys: str) -> None:
        """Invalidate in the background (best effort; the TTL bounds staleness otherwise)."""
        client = self.client
        if client is None:
            return
        self.runner.fire(self.guard, lambda: client.delete(*keys))

    def check(self) -> None:
        """One round trip to the current primary; raises when it does not answer."""
        if self.client is None:
            raise DependencyDown("no cache configured")
        self.client.ping()


def make_client(settings: AppSettings) -> redis.Redis | None:
    """A client for the configured Redis, or ``None`` when no cache is configured."""
    timeout = settings.dependency_timeout_s
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }
    if settings.redis_sentinels:
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password.get_secret_value()
        sentinel = Sentinel(
            settings.sentinel_addresses(), sentinel_kwargs=sentinel_kwargs, **common
        )
        client: redis.Redis = sentinel.master_for(
            settings.redis_master, password=password, **common
        )
        return client
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, password=password, **common)
    return None
