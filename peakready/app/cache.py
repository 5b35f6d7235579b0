"""Cache-aside through Redis: Sentinel-discovered primary in the lab, a URL on AWS.

Every call is bounded by the dependency timeout and skipped while Redis is remembered as
down, so the cache can only ever speed requests up, never stall or fail them.

Invalidations are coalesced: an order only notes its keys, and one background thread
deletes everything noted in the last ``INVALIDATE_EVERY_S`` with a single ``DEL``. At a
peak, a hot product's key is then dropped a few times a second, not on every order —
cheaper for the order path and kinder to the hit rate — and stock shown is still at
most that interval (plus a round trip) behind an acknowledged order.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import redis
from redis.sentinel import Sentinel

from peakready.app.guard import BoundedRunner, DependencyDown, DependencyGuard
from peakready.app.settings import AppSettings

#: How long invalidations are gathered before one ``DEL`` drops them all.
INVALIDATE_EVERY_S = 0.05


class Cache:
    """JSON values under string keys with a TTL; ``None`` means "miss or unavailable"."""

    def __init__(
        self, client: redis.Redis | None, guard: DependencyGuard, runner: BoundedRunner, ttl_s: int
    ) -> None:
        self.client = client
        self.guard = guard
        self.runner = runner
        self.ttl_s = ttl_s
        self._stale: set[str] = set()
        self._lock = threading.Lock()
        self._noted = threading.Event()
        self._flusher: threading.Thread | None = None

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
        """Invalidate within ``INVALIDATE_EVERY_S``, in the background (best effort: the
        TTL bounds staleness when Redis is down)."""
        if self.client is None:
            return
        with self._lock:
            self._stale.update(keys)
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_forever, name="cache-invalidate", daemon=True
                )
                self._flusher.start()
        if not self._noted.is_set():
            self._noted.set()

    def flush(self) -> None:
        """Delete the keys noted so far, now (one bounded ``DEL``)."""
        with self._lock:
            keys, self._stale = self._stale, set()
            self._noted.clear()
        client = self.client
        if keys and client is not None:
            # Down: the TTL bounds the staleness. RuntimeError: the runner is shut down.
            with contextlib.suppress(DependencyDown, RuntimeError):
                self.runner.call(self.guard, lambda: client.delete(*keys))

    def _flush_forever(self) -> None:
        while True:
            self._noted.wait()
            time.sleep(INVALIDATE_EVERY_S)  # gather what the next orders note
            self.flush()

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
