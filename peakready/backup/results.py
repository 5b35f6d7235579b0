"""What the lab's backup drill found: checksums, per-repository results, the RPO policy,
and the whole result whose ``summary()`` is the ``backup`` section of summary.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

ORDERS_SQL = """
SELECT count(*), coalesce(max(id), 0), coalesce(sum(quantity), 0),
       coalesce(md5(string_agg(id::text || ':' || idempotency_key || ':' || product_id::text
                               || ':' || quantity::text, ',' ORDER BY id)), '')
FROM orders
"""
PRODUCTS_SQL = """
SELECT count(*), coalesce(sum(p.stock), 0),
       coalesce(md5(string_agg(p.id::text || ':' || p.stock::text, ',' ORDER BY p.id)), ''),
       count(*) FILTER (WHERE p.initial_stock - p.stock <> coalesce(s.sold, 0))
FROM products p
LEFT JOIN (SELECT product_id, sum(quantity) AS sold FROM orders GROUP BY product_id) s
       ON s.product_id = p.id
"""


@dataclass
class Checksums:
    orders: int
    max_order_id: int
    units: int
    orders_md5: str
    products: int
    stock: int
    stock_md5: str
    inconsistent_products: int  # initial_stock - stock != units sold

    @classmethod
    def read(cls, conn: psycopg.Connection[Any]) -> Checksums:
        o = conn.execute(ORDERS_SQL).fetchone()
        p = conn.execute(PRODUCTS_SQL).fetchone()
        assert o is not None and p is not None
        return cls(
            int(o[0]), int(o[1]), int(o[2]), str(o[3]), int(p[0]), int(p[1]), str(p[2]), int(p[3])
        )

    def differences(self, expected: Checksums) -> list[str]:
        out = []
        for name, value in asdict(self).items():
            want = getattr(expected, name)
            if value != want:
                out.append(f"{name} {value} (source at target: {want})")
        return out


@dataclass
class RepoResult:
    repo: int
    path: str
    backup: str | None = None
    backup_type: str | None = None
    backup_stop: str | None = None
    passed: bool = False
    reason: str | None = None
    rto_s: float | None = None
    rpo_s: float | None = None
    verified_orders: int = 0
    missing_orders: int = 0
    unexpected_orders: int = 0
    oversold_units: int = 0
    restore_s: float | None = None
    recovery_s: float | None = None
    verify_s: float | None = None
    wal_segments_checked: int = 0
    port: int | None = None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "path": self.path,
            "backup": self.backup,
            "backup_type": self.backup_type,
            "backup_stop": self.backup_stop,
            "rto_s": self.rto_s,
            "rpo_s": self.rpo_s,
            "verified_orders": self.verified_orders,
            "missing_orders": self.missing_orders,
            "unexpected_orders": self.unexpected_orders,
            "oversold_units": self.oversold_units,
            "restore_s": self.restore_s,
            "recovery_s": self.recovery_s,
            "verify_s": self.verify_s,
            "wal_segments_checked": self.wal_segments_checked,
            "port": self.port,
            "passed": self.passed,
            "reason": self.reason,
            "problems": self.problems,
        }


@dataclass
class Policy:
    """The stack's objective against what the repositories held when the drill began."""

    repo: int
    rpo_s: float
    rto_s: float
    backup_age_s: float | None
    recoverable_until: str | None
    exposure_s: float | None
    breach: str | None
    note: str | None = None
    schedule: str | None = None  # what the stack's cadence says is due in this repository

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BackupResult:
    started: str
    finished: str = ""
    target: str | None = None
    repositories: list[RepoResult] = field(default_factory=list)
    policy: list[Policy] = field(default_factory=list)
    redis: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    backoffice: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    backups_taken: list[dict[str, Any]] = field(default_factory=list)
    orders_before_target: int = 0
    orders_after_target: int = 0
    work_dir: str = ""

    @property
    def passed(self) -> bool:
        return not self.all_reasons() and bool(self.repositories)

    def all_reasons(self) -> list[str]:
        reasons = list(self.reasons)
        reasons += [p.breach for p in self.policy if p.breach]
        reasons += [f"repo{r.repo}: {r.reason}" for r in self.repositories if not r.passed]
        for part in (self.redis, self.search, self.backoffice):
            if part and not part.get("passed") and part.get("reason"):
                reasons.append(str(part["reason"]))
        return reasons

    @property
    def backup_age_s(self) -> float | None:
        ages = [p.backup_age_s for p in self.policy if p.backup_age_s is not None]
        return round(min(ages), 1) if ages else None

    def summary(self) -> dict[str, Any]:
        """The ``backup`` section of summary.json (DESIGN §7), worst repository first."""
        repos = self.repositories
        rtos = [r.rto_s for r in repos]
        rpos = [r.rpo_s for r in repos]
        return {
            "rto_s": None if not repos or None in rtos else max(x for x in rtos if x is not None),
            "rpo_s": None if not repos or None in rpos else max(x for x in rpos if x is not None),
            "verified_orders": min((r.verified_orders for r in repos), default=0),
            "missing_orders": max((r.missing_orders for r in repos), default=0),
            "passed": self.passed,
            "reasons": self.all_reasons(),
            "backup_age_s": self.backup_age_s,
            "target": self.target,
            "orders_before_target": self.orders_before_target,
            "orders_after_target": self.orders_after_target,
            "repositories": [r.summary() for r in repos],
            "policy": [p.summary() for p in self.policy],
            "backups_taken": self.backups_taken,
            "redis": self.redis,
            "search": self.search,
            "backoffice": self.backoffice,
            "started": self.started,
            "finished": self.finished,
        }


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
