"""Time to detect: which alerts a drill raised, when, and whether it should have.

:class:`AlertWatcher` polls the target's firing alerts (the lab: Alertmanager's
``GET /api/v2/alerts``; AWS: the stack's alarms in ALARM) through the drill, from
before its steady state until every alert it saw has resolved, and keeps each firing
episode's start as Prometheus stamped it (``startsAt``) and the first poll that no
longer saw it. :func:`judge` turns that into the scenario's ``alerts`` and ``mttd_s``
(DESIGN §7) and the reasons it fails:

- an expected alert (``peakready.monitoring.alerts.expected``) that does not fire
  within the stack's ``alarms.mttd_s`` of the fault;
- one that fired but did not resolve within ``alarms.resolve_s`` of recovery (the
  end of the experiment, rollbacks included);
- any page alert that starts firing in the steady state before the fault: noise.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: How often the watcher asks (seconds).
POLL_S = 1.0

#: Alertmanager's active alerts (its API's JSON), None when it did not answer.
Fetch = Callable[[], list[dict[str, Any]] | None]


@dataclass
class Seen:
    """One firing episode of one alert (one label set) as the watcher saw it."""

    name: str
    fingerprint: str
    #: Epoch seconds: Prometheus's ``startsAt``, or the poll that first saw the episode
    #: when Alertmanager reports an older ``startsAt`` (it merges an alert that fires
    #: again soon after it resolved into the earlier one, keeping that one's start).
    fired_at: float
    seen_at: float
    resolved_at: float | None = None
    #: Already firing at the watcher's first poll: an earlier drill's, not this one's.
    carried: bool = False


class AlertWatcher:
    """Polls ``fetch`` every ``poll_s`` in a thread, from :meth:`start` to :meth:`stop`."""

    def __init__(self, fetch: Fetch, poll_s: float = POLL_S) -> None:
        self.fetch = fetch
        self.poll_s = poll_s
        self.seen: list[Seen] = []
        self._open: dict[str, Seen] = {}  # fingerprint → its episode still firing
        self.started_at = 0.0
        self.polls = 0
        self.failed_polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.started_at = time.time()
        self.poll()
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        now = time.time()
        alerts = self.fetch()
        self.polls += 1
        if alerts is None:
            self.failed_polls += 1
            return
        first = self.polls == 1
        with self._lock:
            active = set()
            for alert in alerts:
                if alert.get("status", {}).get("state") == "unprocessed":
                    continue
                fingerprint = str(alert["fingerprint"])
                active.add(fingerprint)
                if fingerprint in self._open:
                    continue
                starts = _epoch(alert["startsAt"])
                name = str(alert.get("labels", {}).get("alertname", "?"))
                fired = starts if first or starts >= self.started_at else now
                episode = Seen(name, fingerprint, fired, now, carried=first)
                self.seen.append(episode)
                self._open[fingerprint] = episode
            for fingerprint in [f for f in self._open if f not in active]:
                self._open.pop(fingerprint).resolved_at = now

    def wait_resolved(self, timeout_s: float) -> None:
        """Keep watching until every alert seen since :meth:`start` has resolved, or
        ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(s.carried for s in self._open.values()):
                    return
            time.sleep(self.poll_s)

    def stop(self) -> list[Seen]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            return sorted(self.seen, key=lambda s: s.fired_at)


@dataclass
class Detection:
    alerts: list[dict[str, Any]]
    mttd_s: float | None
    reasons: list[str]


def judge(
    seen: list[Seen],
    expected: list[str],
    watch_started: float,
    steady_until: float | None,
    fault_at: float | None,
    recovered_at: float,
    mttd_objective_s: float,
    resolve_objective_s: float,
    tickets: frozenset[str] = frozenset(),
) -> Detection:
    """The scenario's detection figures and the reasons it fails (see the module).

    ``steady_until``: the end of the steady state (the fault, or a peak's ramp; None:
    the whole run is steady); times are relative to ``fault_at`` when there is one.
    ``tickets``: alerts of severity ticket (capacity: CPU, storage, lag), reported but
    not noise — a busy 2-core lab under drill load is what they say, not a false page.
    """
    ours = [s for s in seen if not s.carried]
    origin = fault_at if fault_at is not None else watch_started
    reasons = [
        f"alert {s.name} fired in the steady state before the fault (noise)"
        for s in ours
        if (steady_until is None or s.fired_at < steady_until) and s.name not in tickets
    ]
    alerts, delays = [], []
    for s in ours:
        resolved = None if s.resolved_at is None else round(s.resolved_at - origin, 1)
        alerts.append(
            {
                "name": s.name,
                "fired_after_s": round(s.fired_at - origin, 1),
                "resolved_after_s": resolved,
            }
        )
    for name in expected:
        if fault_at is None:
            reasons.append(f"expected alert {name}: no fault was injected")
            continue
        fired = [s for s in ours if s.name == name and s.fired_at >= fault_at]
        if not fired:
            reasons.append(
                f"expected alert {name} never fired (mttd objective {mttd_objective_s:g} s)"
            )
            continue
        first = fired[0]
        delay = first.fired_at - fault_at
        delays.append(delay)
        if delay > mttd_objective_s:
            reasons.append(
                f"expected alert {name} fired {delay:.1f} s after the fault "
                f"(mttd objective {mttd_objective_s:g} s)"
            )
        last = fired[-1]
        if last.resolved_at is None or last.resolved_at > recovered_at + resolve_objective_s:
            when = (
                "still firing"
                if last.resolved_at is None
                else f"resolved {last.resolved_at - recovered_at:.1f} s after"
            )
            reasons.append(
                f"alert {name} did not resolve within {resolve_objective_s:g} s of recovery "
                f"({when})"
            )
    mttd = round(max(delays), 1) if delays and len(delays) == len(expected) else None
    return Detection(alerts, mttd, reasons)


def _epoch(stamp: str) -> float:
    """Alertmanager's RFC 3339 time (nanoseconds, ``Z``) as epoch seconds."""
    text = stamp.replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    if rest:  # keep microseconds: fromisoformat takes at most 6 digits
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text).timestamp()
