"""The throughput bench's two order paths against a real lab (its own port block, 25000).

The ratio is only a figure if both paths do the same work: every order commits (and
waits for the synchronous standby) on its own, through HAProxy and straight to
PostgreSQL alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from lab_run import running_lab

from peakready.bench import throughput
from peakready.bench.load import db_step, http_step
from peakready.lab import proc
from peakready.lab.state import LabState
from peakready.lab.supervisor import scaling_suspended

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
BASE = 25000
LAB_DIR = REPO / ".lab" / f"pytest-{BASE}"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabState]:
    with running_lab(BASE, LAB_DIR) as state:
        yield state


def bench_orders(db: throughput._Database) -> int:
    with db.connect() as conn:
        row = conn.execute(
            # Only the bench's own products: the synthetic checkout orders one of its own.
            "SELECT count(*) FROM orders WHERE product_id BETWEEN %s AND %s",
            (
                throughput.BENCH_PRODUCT_BASE + 1,
                throughput.BENCH_PRODUCT_BASE + throughput.BENCH_PRODUCTS,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_direct_database_order_is_committed_when_it_returns(lab: LabState) -> None:
    db = throughput._Database(lab)
    db.ensure_products()
    with db.connect() as conn:
        before = bench_orders(db)
        assert db.order(conn, 0)
        # Seen from another session while the bench's connection is still open.
        assert bench_orders(db) == before + 1
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_both_paths_place_every_order_they_count(lab: LabState) -> None:
    with scaling_suspended(lab.lab_dir):  # as the bench measures: a group of fixed size
        both_paths(lab)


def both_paths(lab: LabState) -> None:
    db = throughput._Database(lab)
    db.ensure_products()
    port = throughput._port_of(str(lab.endpoints["http"]))
    result = throughput.Throughput()
    before = bench_orders(db)
    http = result.account(
        "orders_haproxy", lab, lambda: http_step(port, 2, throughput._orders, 1.0, 0.2)
    )
    direct = result.account(
        "orders_direct_db", lab, lambda: db_step(db.connect, db.order, 2, 1.0, 0.2)
    )
    assert http.ok > 0 and http.errors == 0
    assert direct.ok > 0 and direct.errors == 0
    # Warm-up orders are placed but not counted: at least every counted order is there.
    assert bench_orders(db) - before >= http.ok + direct.ok
    cpu = result.cpu_ms_per_op()
    assert cpu["orders_haproxy"]["storefront"] > 0
    assert cpu["orders_haproxy"]["postgresql"] > 0
    assert cpu["orders_direct_db"]["postgresql"] > 0
    # The direct path bypasses the storefront's HTTP side: only its relays work for those
    # orders, publishing their outbox rows (measured 0.24 against 1.34 ms per order).
    assert cpu["orders_direct_db"]["storefront"] < cpu["orders_haproxy"]["storefront"] / 3


def stopped(lab: LabState) -> list[bool]:
    """Per broker node: whether its Erlang VM is stopped (state T in /proc)."""
    found = []
    for node in lab.by_kind("rabbitmq"):
        if node.get("node"):
            vms = proc.children(int(node["pid"]))
            found.append(all(Path(f"/proc/{p}/stat").read_text().split()[2] == "T" for p in vms))
    return found


def test_the_broker_is_held_during_an_order_step_and_drained_after_it(lab: LabState) -> None:
    """Orders of the step wait in the outbox while the broker is stopped, the nodes run
    again after it, also when the step fails, and the outbox is empty before the next."""
    db = throughput._Database(lab)
    db.ensure_products()
    assert db.outbox, "the bench lab runs a stack with a queue tier"
    with db.broker_held(lambda _: None):
        assert stopped(lab) == [True, True, True]
        with db.connect() as conn:
            assert all(db.order(conn, i) for i in range(20))
            time.sleep(0.5)  # the relays had time to send them, had the broker run
            row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
        assert row is not None and row[0] >= 20
    assert stopped(lab) == [False, False, False]
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    assert row == (0,)

    with pytest.raises(RuntimeError), db.broker_held(lambda _: None):
        raise RuntimeError("the step failed")
    assert stopped(lab) == [False, False, False]
