"""Bounded calls to optional dependencies (cache, search) with a short back-off.

A dependency that fails or times out is remembered as down for ``backoff_s`` so that the
following requests skip it at once instead of each paying the timeout again. Every call
runs on a small worker pool and the caller waits at most ``timeout_s``: a frozen server
(which still completes TCP handshakes) can never stall a request past the bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class DependencyDown(Exception):
    """The dependency is down, timed out or is in its back-off window."""


class DependencyGuard:
    """Availability of one dependency: up, or down until a point in time."""

    def __init__(self, name: str, timeout_s: float, backoff_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._down = False
        self._down_until = 0.0
        self._last_error = ""
        self._lock = threading.Lock()
        self._probing = False

    @property
    def degraded(self) -> bool:
        """True from a failed call until the next successful one."""
        return self._down

    @property
    def backing_off(self) -> bool:
        """True during the back-off after a failure: calls are skipped, not attempted."""
        return time.monotonic() < self._down_until

    @property
    def last_error(self) -> str:
        return self._last_error

    def mark_down(self, error: str) -> None:
        with self._lock:
            self._down = True
            self._down_until = time.monotonic() + self.backoff_s
            self._last_error = error

    def mark_up(self) -> None:
        with self._lock:
            self._down = False
            self._down_until = 0.0
            self._last_error = ""

    def start_probe(self) -> bool:
        """Claim the single probe slot; False when a probe is already in flight."""
        with self._lock:
            if self._probing:
                return False
            self._probing = True
            return True

    def end_probe(self) -> None:
        with self._lock:
            self._probing = False


class BoundedRunner:
    """Runs dependency calls on worker threads and waits for each at most its guard's bound."""

    def __init__(self, workers: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dependency")

    def call(
        self, guard: DependencyGuard, fn: Callable[[], T], timeout_s: float | None = None
    ) -> T:
        """``fn()`` within the bound, or :class:`DependencyDown` (and the guard marked down)."""
        if guard.backing_off:
            raise DependencyDown(f"{guard.name} is down ({guard.last_error}); backing off")
        bound = guard.timeout_s if timeout_s is None else timeout_s
        future = self._pool.submit(fn)
        try:
            result = future.result(timeout=bound)
        except FutureTimeout:
            future.cancel()
            guard.mark_down(f"no answer within {bound:.2f}s")
            raise DependencyDown(f"{guard.name}: no answer within {bound:.2f}s") from None
        except Exception as exc:  # any client error means "down" for an optional dependency
            guard.mark_down(f"{type(exc).__name__}: {exc}")
            raise DependencyDown(f"{guard.name}: {type(exc).__name__}: {exc}") from exc
        guard.mark_up()
        return result

    def fire(self, guard: DependencyGuard, fn: Callable[[], object]) -> None:
        """Run ``fn()`` in the background (best effort); failures only mark the guard down."""
        if guard.backing_off:
            return

        def run() -> None:
            try:
                fn()
            except Exception as exc:  # best effort: the caller does not wait for the result
                guard.mark_down(f"{type(exc).__name__}: {exc}")

        self._pool.submit(run)

    def probe(self, guard: DependencyGuard, check: Callable[[], object]) -> None:
        """Check the dependency in the background (at most one probe in flight per guard).

        Unlike requests, probes also run during the back-off: they notice recovery.
        Readiness uses them so that it never waits on an optional dependency.
        """
        if not guard.start_probe():
            return

        def run() -> None:
            try:
                check()
            except Exception as exc:  # any client error means "down" for an optional dependency
                guard.mark_down(f"{type(exc).__name__}: {exc}")
            else:
                guard.mark_up()
            finally:
                guard.end_probe()

        try:
            self._pool.submit(run)
        except RuntimeError:  # shutting down
            guard.end_probe()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
