"""The order pipeline on a real lab: outbox, relay, a 3-node RabbitMQ cluster, the back
office's workers and database, and the ledger's delivery check failing for the right
reasons (a consumer that acks before it commits, one that is not idempotent).

One lab for the module, ports 29000-29159 (``PEAKREADY_PIPELINE_TEST_PORT_BASE``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pika
import psycopg
import pytest
from lab_run import PEAKREADY, lab_env, running_lab

from peakready import pipeline
from peakready.app import db
from peakready.app.metrics import Metrics as AppMetrics
from peakready.app.relay import Relay
from peakready.backoffice.server import ORDERS_SQL, order_row
from peakready.backoffice.settings import BackofficeSettings, load_settings
from peakready.backoffice.worker import Applier, Metrics, Worker, connect
from peakready.backup.backoffice_restore import drill_backoffice
from peakready.chaos.verify.shared import check_deliveries
from peakready.lab import control, proc
from peakready.lab.components.backoffice import ready_worker
from peakready.lab.components.monitoring import alertmanager_fetch, credentials
from peakready.lab.components.queue import Cluster
from peakready.lab.state import BACKOFFICE_SCALING, LabState
from peakready.load.ledger import DeliveryCheck, LedgerEntry, compare_deliveries
from peakready.targets.lab import LabDriver

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
BASE = int(os.environ.get("PEAKREADY_PIPELINE_TEST_PORT_BASE", "29000"))
LAB_DIR = REPO / ".lab" / f"pytest-{BASE}"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabState]:
    with running_lab(BASE, LAB_DIR) as state:
        yield state


@pytest.fixture
def driver(lab: LabState) -> Iterator[LabDriver]:
    """The lab's driver; every test leaves the lab restored (workers and nodes back)."""
    found = LabDriver("dev")
    try:
        yield found
    finally:
        found.restore()


def eventually(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def place(lab: LabState, product: int = 5) -> dict[str, Any]:
    key = f"pipeline-{uuid.uuid4()}"
    answer = httpx.post(
        f"{lab.outputs['endpoint']}/orders",
        json={"product_id": product, "quantity": 1},
        headers={"Idempotency-Key": key},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return {**answer.json(), "key": key}


def entry(order: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(order["key"], order["id"], order["product_id"], 1, time.time())


def deliveries(lab: LabState, orders: list[dict[str, Any]], wait_s: float) -> DeliveryCheck:
    """The ledger's delivery check of ``orders``, as a drill makes it."""
    return check_deliveries(
        [entry(o) for o in orders],
        lab.outputs["endpoint"],
        lab.outputs["backoffice_endpoint"],
        lab.secrets()["audit_token"],
        wait_s=wait_s,
    )


def backoffice_order(lab: LabState, order_id: int) -> httpx.Response:
    return httpx.get(f"{lab.outputs['backoffice_endpoint']}/orders/{order_id}", timeout=5)


def applied(lab: LabState, order_id: int, deliveries: int = 1) -> dict[str, Any] | None:
    answer = backoffice_order(lab, order_id)
    if answer.status_code != 200 or answer.json()["deliveries"] < deliveries:
        return None
    return dict(answer.json())


def in_database(lab: LabState, order_id: int, deliveries: int = 1) -> dict[str, Any] | None:
    """The order's row in the back office's database (while its front has no worker)."""
    settings = worker_settings(lab)
    with connect(settings.db_dsn, settings) as conn:
        rows = conn.execute(ORDERS_SQL, ([order_id],)).fetchall()
    found = order_row(rows[0]) if rows else None
    return found if found and found["deliveries"] >= deliveries else None


def audit(lab: LabState, ids: list[int]) -> dict[str, Any]:
    answer = httpx.post(
        f"{lab.outputs['backoffice_endpoint']}/audit",
        json={"order_ids": ids},
        headers={"Authorization": f"Bearer {lab.secrets()['audit_token']}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def outbox_pending(lab: LabState) -> int:
    answer = httpx.post(
        f"{lab.outputs['endpoint']}/audit",
        json={"idempotency_keys": []},
        headers={"Authorization": f"Bearer {lab.secrets()['audit_token']}"},
        timeout=10,
    )
    return int(answer.json()["outbox"]["pending"])


def worker_settings(lab: LabState) -> BackofficeSettings:
    return load_settings(lab.lab_dir / "backoffice" / "backoffice.env")


def channel(lab: LabState) -> tuple[pika.BlockingConnection, Any]:
    settings = worker_settings(lab)
    params = pipeline.connection_parameters(
        pipeline.parse_urls(settings.queue_url, "QUEUE_URL"),
        lab.secrets()["rabbitmq_password"],
    )
    connection = pika.BlockingConnection(params)
    found = connection.channel()
    found.confirm_delivery()
    return connection, found


def publish(lab: LabState, body: bytes, message_id: str, queue: str = "orders") -> None:
    connection, ch = channel(lab)
    try:
        ch.basic_publish(
            "", queue, body, pika.BasicProperties(delivery_mode=2, message_id=message_id)
        )
    finally:
        connection.close()


def order_message(order: dict[str, Any]) -> bytes:
    return pipeline.encode(
        {
            "order_id": order["id"],
            "idempotency_key": order["key"],
            "product_id": order["product_id"],
            "quantity": 1,
            "created_at": order["created_at"],
        }
    )


class InTest:
    """A worker run in the test process (the lab's own workers stopped meanwhile)."""

    def __init__(self, lab: LabState, worker_class: type[Worker], applier: Applier) -> None:
        self.worker = worker_class(worker_settings(lab), Metrics(), applier)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stopping,))

    def __enter__(self) -> Worker:
        self.thread.start()
        assert eventually(lambda: self.worker.ready), "the in-test worker never consumed"
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)


# --------------------------------------------------------------------------- the tier


def test_status_names_the_broker_and_the_back_office(lab: LabState) -> None:
    result = subprocess.run(
        [PEAKREADY, "lab", "status", "--stack", "dev", "--json"],
        env=lab_env(BASE, LAB_DIR),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0, [c for c in report["components"] if not c["healthy"]]
    outputs = report["outputs"]
    assert outputs["queue_broker"] == "peakready-dev"
    assert outputs["backoffice_group"] == "backoffice-dev"
    assert outputs["backoffice_endpoint"] == f"http://127.0.0.1:{BASE + 28}"
    names = {c["name"] for c in report["components"]}
    assert {f"rabbitmq-{az} (AMQP {BASE + 4 + i})" for i, az in enumerate(lab.azs)} <= names


def test_orders_flow_through_a_quorum_queue_on_every_node(lab: LabState) -> None:
    done = Cluster.of_state(lab).run(
        lab.azs[0],
        "list_queues",
        "name",
        "type",
        "members",
        "--formatter",
        "json",
    )
    queues = {q["name"]: q for q in json.loads(done.stdout)}
    assert queues["orders"]["type"] == "quorum"
    assert sorted(queues["orders"]["members"]) == sorted(f"rabbit-{az}@localhost" for az in lab.azs)
    assert queues["orders.dead"]["type"] == "quorum"


def test_every_listener_of_the_lab_binds_loopback_only(lab: LabState) -> None:
    pids = {
        pid
        for group in [lab.cgroup, *(lab.cgroup / az for az in lab.azs)]
        for pid in proc.cgroup_pids(group)
    }
    lines = subprocess.run(
        ["ss", "-ltnupH"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.splitlines()
    ours = [line for line in lines if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids]
    assert any("beam.smp" in line for line in ours) and any("epmd" in line for line in ours)
    wide = [line for line in ours if not re.search(r"\s(127\.0\.0\.1|\[::1\]):\d+\s", line)]
    assert wide == []


def test_the_broker_refuses_clients_without_the_lab_password(lab: LabState) -> None:
    amqp = lab.endpoints["rabbitmq"][0]
    for user, password in (("guest", "guest"), ("peakready", "wrong")):
        params = pika.ConnectionParameters(
            "127.0.0.1",
            amqp["port"],
            credentials=pika.PlainCredentials(user, password),
            connection_attempts=1,
        )
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(params)


def test_secrets_of_the_pipeline_stay_in_private_files(lab: LabState) -> None:
    private = [
        lab.lab_dir / "backoffice" / "backoffice.env",
        *(lab.lab_dir / "rabbitmq").glob("*/rabbitmq.conf"),
        *(lab.lab_dir / "rabbitmq").glob("*/home/.erlang.cookie"),
    ]
    assert len(private) == 1 + 2 * len(lab.azs)
    for path in private:
        assert path.stat().st_mode & 0o077 == 0, path
    secrets = lab.secrets()
    for entry_ in lab.processes:
        recorded = " ".join(entry_["cmd"]) + json.dumps(entry_.get("env", {}))
        assert not any(value in recorded for value in secrets.values()), entry_["name"]


# --------------------------------------------------------------------------- exactly once


def test_an_order_reaches_the_back_office_once_and_an_unknown_one_is_404(lab: LabState) -> None:
    order = place(lab)
    found = eventually(lambda: applied(lab, order["id"]))
    assert found is not None, "the order never reached the back office"
    assert (found["applied_count"], found["deliveries"]) == (1, 1)
    assert backoffice_order(lab, 10**15).status_code == 404
    workers = LabState.load("dev").backoffice_group()["instances"]
    assert len(workers) == 3, "one back-office worker per AZ"
    for worker in workers:
        text = httpx.get(f"http://127.0.0.1:{worker['port']}/metrics", timeout=5).text
        assert "backoffice_consumer_up 1.0" in text, worker["id"]


def test_the_supervisor_replaces_a_lost_worker_and_keeps_none_while_desired_is_0(
    lab: LabState, driver: LabDriver
) -> None:
    group = LabState.load("dev").backoffice_group()
    lost = group["instances"][0]
    assert control.signal_pid(LabState.load("dev"), int(lost["pid"]), signal.SIGKILL)

    def replaced() -> list[dict[str, Any]] | None:
        now = LabState.load("dev").backoffice_group()
        ready = [w for w in now["instances"] if ready_worker(int(w["port"]))]
        ids = {w["id"] for w in ready}
        return ready if len(ready) == 3 and lost["id"] not in ids else None

    ready = eventually(replaced)
    assert ready, f"{lost['id']} was not replaced: {LabState.load('dev').backoffice_group()}"
    assert sorted(w["az"] for w in ready) == sorted(lab.azs)  # one per AZ again
    order = place(lab)
    assert eventually(lambda: applied(lab, order["id"])), "the new worker does not consume"

    stopped = driver.stop_consumers()
    assert (len(stopped["stopped"]), stopped["still_running"]) == (3, [])
    time.sleep(3)  # a few supervisor ticks: a group at 0 launches nothing
    assert LabState.load("dev").backoffice_group()["instances"] == []
    assert len(driver.start_consumers()["started"]) == 3


def queue_depth(lab: LabState) -> int:
    connection, ch = channel(lab)
    try:
        return int(ch.queue_declare("orders", passive=True).method.message_count)
    finally:
        connection.close()


def worker_decisions(lab: LabState) -> list[dict[str, Any]]:
    path = lab.lab_dir / BACKOFFICE_SCALING
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_backlog_brings_the_workers_back_sized_for_it_and_they_scale_in_after_it(
    lab: LabState, driver: LabDriver
) -> None:
    """The worker group tracks the backlog per worker, as the worker ASG tracks Amazon
    MQ's MessageCount: the dev stack's 6,000 per worker, 30x faster in the lab (200)."""
    driver.stop_consumers()
    with ThreadPoolExecutor(8) as pool:
        orders = list(pool.map(lambda _: place(lab), range(900)))
    assert eventually(lambda: queue_depth(lab) >= 900, timeout=30), queue_depth(lab)
    time.sleep(2)  # a stopped group stays stopped, whatever waits
    assert LabState.load("dev").backoffice_group()["instances"] == []
    before = len(worker_decisions(lab))

    def grown() -> dict[str, Any] | None:
        group = LabState.load("dev").backoffice_group()
        return group if len(group["instances"]) >= 5 else None  # ceil(900 / 200), not 3

    driver.start_consumers()
    group = eventually(grown)
    assert group, LabState.load("dev").backoffice_group()
    assert {w["az"] for w in group["instances"]} == set(lab.azs)
    sized = worker_decisions(lab)[before]
    assert sized["desired"] >= 5 and sized["target"] == 200, sized
    check = deliveries(lab, orders, wait_s=30)
    assert (check.missing_deliveries, check.applied_twice) == (0, 0)

    def scaled_in() -> bool:
        return len(LabState.load("dev").backoffice_group()["instances"]) == 3

    assert eventually(scaled_in, timeout=60), worker_decisions(lab)[before:]
    assert worker_decisions(lab)[-1]["reason"] == "backlog per worker below the target"


def test_queue_age_fires_after_prometheus_restarted_while_the_workers_were_replaced(
    lab: LabState, driver: LabDriver
) -> None:
    """Prometheus writes no staleness markers when it stops: with its default 5 min
    lookback, the replaced workers' series would still count as consuming."""

    def consuming() -> int:
        state = LabState.load("dev")
        answer = httpx.get(
            f"{state.endpoints['prometheus']}/api/v1/query",
            params={"query": "count(backoffice_consumer_up == 1)"},
            auth=credentials(state),
            timeout=5,
        )
        found = answer.json()["data"]["result"] if answer.status_code == 200 else []
        return int(found[0]["value"][1]) if found else 0

    assert eventually(lambda: consuming() == 3, timeout=30), "the workers were never scraped"
    control.kill_process(LabState.load("dev"), "prometheus", signal.SIGTERM)
    assert eventually(lambda: not proc.alive(LabState.load("dev").process("prometheus")["pid"]))
    driver.stop_consumers()
    driver.start_consumers()  # new instance ids, unseen by the stopped Prometheus
    control.restart_process(LabState.load("dev"), "prometheus")
    fetch = alertmanager_fetch(LabState.load("dev"))
    # Scraping the new workers again, with the old series still within a 5 min lookback.
    assert eventually(lambda: fetch() is not None, timeout=30)
    time.sleep(8)
    driver.stop_consumers()

    def fired() -> bool:
        return "QueueAge" in [a["labels"]["alertname"] for a in fetch() or []]

    assert eventually(fired, timeout=20), "QueueAge stayed silent with every worker stopped"


def test_a_redelivered_order_is_counted_not_applied_again(lab: LabState) -> None:
    order = place(lab)
    assert eventually(lambda: applied(lab, order["id"]))
    publish(lab, order_message(order), str(order["id"]))
    again = eventually(lambda: applied(lab, order["id"], deliveries=2))
    assert again is not None and again["applied_count"] == 1


def test_a_poison_message_is_dead_lettered_with_its_reason(lab: LabState) -> None:
    publish(lab, b'{"order_id": "seven"}', "poison-1")

    def dead() -> dict[str, Any] | None:
        answer = audit(lab, [])
        return answer if answer["dead_letters_recorded"] >= 1 else None

    answer = eventually(dead)
    assert answer is not None
    assert answer["dead_letters"][0] == {
        **answer["dead_letters"][0],
        "message_id": "poison-1",
        "reason": "order_id: expected an integer",
    }
    assert eventually(lambda: audit(lab, [])["dead_letter_messages"] == 1)
    assert compare_deliveries([], audit(lab, []), 0).unexplained_dead_letters == 0
    # a dead letter nobody recorded (an expired message, say) is unexplained
    publish(lab, b"{}", "expired-1", queue="orders.dead")
    assert eventually(lambda: audit(lab, [])["dead_letter_messages"] == 2)
    assert compare_deliveries([], audit(lab, []), 0).unexplained_dead_letters == 1
    connection, ch = channel(lab)
    ch.queue_purge("orders.dead")
    connection.close()


# --------------------------------------------------------------------------- faults


def test_a_broker_outage_grows_the_outbox_not_the_order_path(
    lab: LabState, driver: LabDriver
) -> None:
    state = LabState.load("dev")  # today's PIDs (a restore records new ones)
    nodes = [p for p in state.by_kind("rabbitmq") if p["name"] != "epmd"]
    control.stop_pids(state, [(int(p["pid"]), p.get("data_dir")) for p in nodes], timeout=20)
    orders = [place(lab, product=6) for _ in range(20)]  # each one a 201 (place asserts it)
    assert outbox_pending(lab) == 20

    driver.restore()  # the nodes back, one cluster again

    assert eventually(lambda: outbox_pending(lab) == 0, timeout=60)
    check = deliveries(lab, orders, wait_s=30)
    assert (check.delivered_orders, check.missing_deliveries, check.applied_twice) == (20, 0, 0)


class _DiesAfter:
    """A channel that loses its connection after ``n`` confirmed publishes."""

    def __init__(self, real: Any, n: int) -> None:
        self.real, self.left = real, n

    def basic_publish(self, *args: Any, **kwargs: Any) -> None:
        if self.left == 0:
            raise pika.exceptions.StreamLostError("the relay died")
        self.left -= 1
        self.real.basic_publish(*args, **kwargs)


def test_a_relay_that_dies_mid_batch_loses_nothing_and_ships_nothing_twice(
    lab: LabState,
) -> None:
    """Its rows go out again (3 of them twice on the wire); the back office absorbs it."""
    settings = worker_settings(lab)
    dsn = f"host=127.0.0.1 port={BASE + 1} dbname=shop user=shop connect_timeout=2"
    relay = Relay(
        dsn,
        lab.secrets()["db_app_password"],
        pipeline.parse_urls(settings.queue_url, "QUEUE_URL"),
        lab.secrets()["rabbitmq_password"],
        "orders",
        AppMetrics("test", "relay-test"),
    )
    connection, ch = channel(lab)
    orders = []
    with psycopg.connect(dsn, password=lab.secrets()["db_app_password"]) as conn:
        # The orders and the dying batch in one transaction: no other relay sees the
        # rows before this one has published part of them.
        for _ in range(5):
            key = f"pipeline-{uuid.uuid4()}"
            result = db.place_order(conn, key, 7, 1, True)
            orders.append({**result.order, "key": key})
        with pytest.raises(pika.exceptions.StreamLostError):
            relay.relay_batch(conn, _DiesAfter(ch, 3))
        conn.commit()
    connection.close()

    check = deliveries(lab, orders, wait_s=30)
    assert (check.delivered_orders, check.missing_deliveries, check.applied_twice) == (5, 0, 0)
    twice = [o for o in orders if eventually(lambda o=o: applied(lab, o["id"], deliveries=2), 5)]
    assert len(twice) == 3


@pytest.mark.parametrize("confirms", [False, True], ids=["fire-and-forget", "confirmed"])
def test_a_relay_without_confirms_loses_what_a_dying_node_had_not_read(
    lab: LabState, driver: LabDriver, confirms: bool
) -> None:
    """The node the relay publishes to hangs, then dies (a lost machine). Without
    confirms the relay marks its 5 rows sent once they are in the socket: the back
    office never gets them, and the ledger names them. With confirms the same batch
    waits, fails when the node dies, rolls back, and the lab's relays send it again."""
    # Today's PIDs: earlier tests restarted nodes, and the module's state still names
    # the ones they killed (signalling those would stop nothing).
    state = LabState.load("dev")
    leader = driver.queue_leader()
    port = int(state.process(leader["id"])["port"])
    settings = worker_settings(lab)
    url = next(u for u in pipeline.parse_urls(settings.queue_url, "QUEUE_URL") if f":{port}" in u)
    dsn = f"host=127.0.0.1 port={BASE + 1} dbname=shop user=shop connect_timeout=2"
    password = lab.secrets()["db_app_password"]
    relay = Relay(
        dsn, password, [url], lab.secrets()["rabbitmq_password"], "orders", AppMetrics("t", "r")
    )
    amqp = pika.BlockingConnection(relay.params[0])
    ch = amqp.channel()
    if confirms:
        ch.confirm_delivery()
    orders = []
    assert control.signal_tree(state, leader["id"], signal.SIGSTOP)
    dies = threading.Timer(1.0, control.signal_tree, (state, leader["id"], signal.SIGKILL))
    try:
        with psycopg.connect(dsn, password=password) as conn:
            for _ in range(5):  # in the relay's transaction: no other relay sees them
                key = f"pipeline-{uuid.uuid4()}"
                orders.append({**db.place_order(conn, key, 9, 1, True).order, "key": key})
            dies.start()
            if confirms:
                with pytest.raises(pika.exceptions.AMQPError):
                    relay.relay_batch(conn, ch)
            else:
                assert relay.relay_batch(conn, ch) == 5  # "sent", unread by the node
            conn.commit()
        dies.join()
    finally:
        dies.cancel()
        control.signal_tree(state, leader["id"], signal.SIGKILL)  # never leave it stopped
    driver.restore()

    check = deliveries(lab, orders, wait_s=30 if confirms else 10)
    if confirms:
        assert (check.delivered_orders, check.missing_deliveries) == (5, 0)
    else:
        assert (check.missing_deliveries, check.missing_ids) == (5, [o["id"] for o in orders])
        assert not check.ok


class _AcksFirst(Worker):
    """A defective consumer: it acknowledges, then dies before it commits."""

    def handle(self, db: Any, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)
        self.metrics.deliveries.inc()  # … and the process is gone before the commit


def test_a_consumer_that_acks_before_it_commits_loses_orders_and_the_ledger_says_so(
    lab: LabState, driver: LabDriver
) -> None:
    driver.stop_consumers()
    with InTest(lab, _AcksFirst, Applier()) as worker:
        order = place(lab)
        sample = worker.metrics.registry.get_sample_value
        assert eventually(lambda: (sample("backoffice_deliveries_total") or 0) >= 1)
    driver.start_consumers()

    check = deliveries(lab, [order], wait_s=5)
    assert (check.missing_deliveries, check.missing_ids) == (1, [order["id"]])
    assert not check.ok


class _ShipsEveryDelivery(Applier):
    """A defective apply: no idempotency, every delivery ships."""

    def apply(self, conn: psycopg.Connection[Any], order: dict[str, Any]) -> bool:
        conn.execute(
            "INSERT INTO applied_orders AS a (order_id, idempotency_key, product_id, quantity)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (order_id) DO UPDATE"
            " SET deliveries = a.deliveries + 1",
            (order["order_id"], order["idempotency_key"], order["product_id"], order["quantity"]),
        )
        self.ship(conn, order)
        return True


def test_a_consumer_without_idempotency_ships_a_redelivery_and_the_ledger_says_so(
    lab: LabState, driver: LabDriver
) -> None:
    driver.stop_consumers()
    with InTest(lab, Worker, _ShipsEveryDelivery()):
        order = place(lab)
        assert eventually(lambda: in_database(lab, order["id"]))
        publish(lab, order_message(order), str(order["id"]))  # the relay sent it twice
        row = eventually(lambda: in_database(lab, order["id"], deliveries=2))
    assert row is not None and row["applied_count"] == 2
    driver.start_consumers()

    check = deliveries(lab, [order], wait_s=10)
    assert (check.applied_twice, check.twice_ids) == (1, [order["id"]])


def test_losing_the_queues_leader_moves_it_and_loses_nothing(
    lab: LabState, driver: LabDriver
) -> None:
    before = driver.queue_leader()
    failed = driver.fail_queue_leader()
    orders = [place(lab, product=8) for _ in range(10)]
    cluster = Cluster.of_state(lab)
    moved = eventually(lambda: cluster.leader("orders") not in (None, before["node"]), 30)
    assert moved and failed["node"] == before["node"]
    check = deliveries(lab, orders, wait_s=30)
    assert (check.delivered_orders, check.missing_deliveries, check.applied_twice) == (10, 0, 0)


def test_the_lab_comes_back_on_its_data_with_its_cluster_and_back_office(lab: LabState) -> None:
    """down, then up on the data kept: the nodes start together (each waits for the one
    that stopped last), and the back office still knows the orders it applied."""
    order = place(lab)
    assert eventually(lambda: applied(lab, order["id"]))
    for command in ("down", "up"):
        done = subprocess.run(
            [PEAKREADY, "lab", command, "--stack", "dev"],
            env=lab_env(BASE, LAB_DIR),
            capture_output=True,
            text=True,
            timeout=200,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    again = LabState.load("dev")
    assert applied(again, order["id"]) is not None
    assert place(again)["id"] > order["id"]


# --------------------------------------------------------------------------- backup


def test_the_back_offices_backup_restores_every_acknowledged_order_once(lab: LabState) -> None:
    orders = [place(lab, product=10) for _ in range(10)]
    found = drill_backoffice(lab, [entry(o) for o in orders], range(BASE + 153, BASE + 160))
    assert found["passed"], found["reason"]
    assert (found["verified_orders"], found["missing_orders"], found["applied_twice"]) == (10, 0, 0)
    assert 0 < found["backup_s"] < found["rto_s"] < 120
    assert not list(Path("/tmp").glob("peakready-backoffice-*"))  # the scratch is gone


def test_a_back_office_that_lost_an_order_fails_its_restore_naming_it(lab: LabState) -> None:
    orders = [place(lab, product=10) for _ in range(3)]
    assert eventually(lambda: all(applied(lab, o["id"]) for o in orders))
    lost, twice = orders[0]["id"], orders[1]["id"]
    settings = worker_settings(lab)
    with connect(settings.db_dsn, settings) as conn:  # the back office's own primary
        conn.execute("DELETE FROM shipments WHERE order_id = %s", (lost,))
        conn.execute("DELETE FROM applied_orders WHERE order_id = %s", (lost,))
        conn.execute("INSERT INTO shipments (order_id) VALUES (%s)", (twice,))
        conn.commit()
    found = drill_backoffice(lab, [entry(o) for o in orders], range(BASE + 153, BASE + 160), 2)
    assert not found["passed"]
    assert (found["missing_orders"], found["applied_twice"]) == (1, 1)
    assert f"missing from the restored database (1 never delivered): {lost}" in found["reason"]
