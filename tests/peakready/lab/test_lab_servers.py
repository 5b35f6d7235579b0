"""The lab with real servers: up, orders through HAProxy, status, the supervisor, down.

One lab per module (starting it is the expensive part). Its folder and port block are
the test's own: ``<repo>/.lab/pytest-<base>`` with ``PEAKREADY_LAB_TEST_PORT_BASE``
(default 20000, the dev stack's block) so a developer's own lab is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from lab_run import PEAKREADY, lab_env, running_lab

from peakready.lab import control, observe, proc
from peakready.lab.state import LabState

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
BASE = int(os.environ.get("PEAKREADY_LAB_TEST_PORT_BASE", "20000"))
LAB_DIR = REPO / ".lab" / f"pytest-{BASE}"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 150) -> Any:
    return subprocess.run(
        [PEAKREADY, "lab", *args],
        env=env or lab_env(BASE, LAB_DIR),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[LabState]:
    with running_lab(BASE, LAB_DIR) as state:
        yield state


def psql(port: int, sql: str, password: str) -> str:
    result = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "shop", "-AtXc", sql],
        env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "3"},
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout.strip()


def member_port(lab: LabState, name: str) -> int:
    return next(m["port"] for m in lab.endpoints["db_members"] if m["name"] == name)


def eventually(check: Any, timeout: float = 10.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def order(client: httpx.Client, product_id: int, key: str, quantity: int = 1) -> httpx.Response:
    return client.post(
        "/orders",
        json={"product_id": product_id, "quantity": quantity},
        headers={"Idempotency-Key": key},
    )


# --------------------------------------------------------------------------- tests


def test_order_through_haproxy_is_on_primary_and_replica_cached_and_searchable(
    lab: LabState,
) -> None:
    secrets = lab.secrets()
    endpoint = lab.outputs["endpoint"]
    key = f"test-{uuid.uuid4()}"
    with httpx.Client(base_url=endpoint, timeout=10) as client:
        product = client.get("/products/3").json()
        created = order(client, 3, key)
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]

        cluster = observe.patroni_cluster(lab)
        replica = next(m["name"] for m in cluster["members"] if m["name"] != cluster["leader"])
        query = f"SELECT id FROM orders WHERE idempotency_key = '{key}'"
        assert psql(member_port(lab, cluster["leader"]), query, secrets["db_superuser_password"])
        seen = eventually(
            lambda: psql(member_port(lab, replica), query, secrets["db_superuser_password"])
        )
        assert seen == str(order_id)

        redis_primary = observe.sentinel_master(lab)["master"].split(":")[1]
        assert client.get("/products/3").status_code == 200

        def cached() -> str:
            return subprocess.run(
                [
                    "redis-cli",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    redis_primary,
                    "--no-auth-warning",
                    "GET",
                    "product:3",
                ],
                env={**os.environ, "REDISCLI_AUTH": secrets["redis_password"]},
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()

        assert json.loads(eventually(cached))["id"] == 3

        hits = client.get("/search", params={"q": product["name"]})
        assert hits.status_code == 200
        assert 3 in [hit["id"] for hit in hits.json()]


def test_every_replica_can_replay_wal_from_the_archive(lab: LabState) -> None:
    """A replica that streaming cannot serve (its rewind cut short by a stop, WAL its
    primary recycled) must fetch the WAL from pgBackRest's archive; without a
    ``restore_command`` it waits at "starting" for ever and ``lab up`` never gets ready."""
    password = lab.secrets()["db_superuser_password"]
    cluster = observe.patroni_cluster(lab)
    leader_port = member_port(lab, cluster["leader"])
    segment = psql(leader_port, "SELECT pg_walfile_name(pg_switch_wal())", password)
    archived = eventually(
        lambda: (
            psql(leader_port, "SELECT last_archived_wal FROM pg_stat_archiver", password) >= segment
        ),
        timeout=30,
    )
    assert archived, f"segment {segment} never reached the archive"
    fetched_dir = LAB_DIR / "archive-get-test"
    fetched_dir.mkdir(exist_ok=True)
    shutil.chown(fetched_dir, "postgres", "postgres")
    for member in cluster["members"]:
        if member["name"] == cluster["leader"]:
            continue
        command = psql(member_port(lab, member["name"]), "SHOW restore_command", password)
        assert "archive-get" in command, f"{member['name']}: restore_command {command!r}"
        target = fetched_dir / f"{member['name']}-{segment}"
        fetched = proc.run_as_postgres(
            ["sh", "-c", command.replace("%f", segment).replace("%p", str(target))]
        )
        assert fetched.returncode == 0, fetched.stderr
        assert target.stat().st_size == 16 * 1024 * 1024
        target.unlink()


def test_status_json_reports_every_component_healthy(lab: LabState) -> None:
    result = cli("status", "--stack", "dev", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0, [c for c in report["components"] if not c["healthy"]]
    assert report["healthy"] is True
    names = {c["name"] for c in report["components"]}
    assert {"database (Patroni)", "cache (Redis + Sentinel)", "search (searchd)"} <= names
    assert report["outputs"]["endpoint"] == f"http://127.0.0.1:{BASE}"
    assert report["outputs"]["db_primary"] == observe.patroni_cluster(lab)["leader"]


def test_up_on_a_running_lab_changes_nothing(lab: LabState) -> None:
    before = lab.path.read_text()
    result = cli("up", "--stack", "dev")
    assert result.returncode == 0
    assert "already running" in result.stdout and "nothing changed" in result.stdout
    assert lab.path.read_text() == before


def test_secrets_stay_in_private_files(lab: LabState) -> None:
    secrets = lab.secrets()
    private = [
        lab.lab_dir / "secrets.json",
        lab.lab_dir / "storefront" / "storefront.env",
        *(lab.lab_dir / "patroni").glob("*.yml"),
        *(lab.lab_dir / "redis").glob("*.conf"),
        *(lab.lab_dir / "sentinel").glob("*/sentinel.conf"),  # rewritten by Sentinel
    ]
    for path in private:
        assert path.stat().st_mode & 0o077 == 0, path
    for entry in lab.processes:
        assert not any(value in " ".join(entry["cmd"]) for value in secrets.values())
    logs = "".join(p.read_text(errors="replace") for p in (lab.lab_dir / "logs").glob("*.log"))
    assert not any(value in logs for value in secrets.values())


def test_same_idempotency_key_twice_gives_one_order(lab: LabState) -> None:
    key = f"idem-{uuid.uuid4()}"
    with httpx.Client(base_url=lab.outputs["endpoint"], timeout=10) as client:
        first, second = order(client, 5, key), order(client, 5, key)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    leader = observe.patroni_cluster(lab)["leader"]
    count = psql(
        member_port(lab, leader),
        f"SELECT count(*) FROM orders WHERE idempotency_key = '{key}'",
        lab.secrets()["db_superuser_password"],
    )
    assert count == "1"


def test_fifty_buyers_for_ten_units_never_oversell(lab: LabState) -> None:
    password = lab.secrets()["db_superuser_password"]
    leader_port = member_port(lab, observe.patroni_cluster(lab)["leader"])
    psql(leader_port, "UPDATE products SET stock = 10 WHERE id = 7", password)
    run = uuid.uuid4()
    with (
        httpx.Client(base_url=lab.outputs["endpoint"], timeout=20) as client,
        ThreadPoolExecutor(max_workers=50) as pool,
    ):
        answers = list(
            pool.map(lambda i: order(client, 7, f"buy-{run}-{i}").status_code, range(50))
        )
    assert answers.count(201) == 10, answers
    assert answers.count(409) == 40, answers
    assert psql(leader_port, "SELECT stock FROM products WHERE id = 7", password) == "0"


def test_orders_still_succeed_with_redis_and_searchd_down(lab: LabState) -> None:
    dependencies = [p["name"] for p in lab.processes if p["kind"] in ("redis", "searchd")]
    try:
        for name in dependencies:
            control.kill_process(lab, name)
        with httpx.Client(base_url=lab.outputs["endpoint"], timeout=10) as client:
            created = order(client, 11, f"degraded-{uuid.uuid4()}")
            assert created.status_code == 201, created.text
            started = time.monotonic()
            search = client.get("/search", params={"q": "Widget"})
            assert search.status_code in (200, 503)
            assert time.monotonic() - started < 3.0
            assert client.get("/products/11").status_code == 200
    finally:
        for name in dependencies:
            if not proc.alive(LabState.load("dev").process(name)["pid"]):
                control.restart_process(LabState.load("dev"), name)
    # The restarted servers come back (searchd's RT index from its binlog).
    report = control.wait_healthy(LabState.load("dev"), timeout=60)
    assert report["healthy"]


def test_supervisor_replaces_a_killed_instance_and_haproxy_routes_to_it(lab: LabState) -> None:
    group = lab.app_group()
    victim = group["instances"][0]
    control.kill_process(lab, victim["id"])

    def replaced() -> list[dict[str, Any]] | None:
        instances = observe.app_instances(lab)
        fresh = [i for i in instances if i["id"] != victim["id"] and i["ready"]]
        ids = {i["id"] for i in lab.app_group()["instances"]}
        return instances if len(fresh) == group["desired"] and victim["id"] not in ids else None

    instances = eventually(replaced, timeout=40, every=0.5)
    assert instances, lab.app_group()
    newcomer = next(i for i in instances if i["id"] not in {x["id"] for x in group["instances"]})
    assert newcomer["az"] in lab.azs
    assert newcomer["slot"] != victim["slot"]  # the next free slot, not the dead one's

    def routed() -> bool:
        with httpx.Client(base_url=lab.outputs["endpoint"], timeout=5) as client:
            seen = {client.get("/healthz").json().get("instance") for _ in range(12)}
        return newcomer["id"] in seen

    assert eventually(routed, timeout=10)
    servers = observe.haproxy_servers(lab)
    assert servers[f"storefront/app{newcomer['slot']}"] == "UP"
    assert f"storefront/app{victim['slot']}" not in servers


def test_supervisor_replaces_a_frozen_instance_outside_the_frozen_az(lab: LabState) -> None:
    leader = observe.patroni_cluster(lab)["leader"]
    redis_master = observe.sentinel_master(lab)["master"]
    busy = {m["az"] for m in lab.endpoints["db_members"] if m["name"] == leader}
    busy |= {r["az"] for r in lab.endpoints["redis"] if f"127.0.0.1:{r['port']}" == redis_master}
    az = next(a for a in lab.azs if a not in busy)
    frozen = [i for i in lab.app_group()["instances"] if i["az"] == az]
    assert frozen
    try:
        control.freeze_az(lab, az)

        def moved() -> bool:
            group = lab.app_group()
            return len(group["instances"]) == group["desired"] and all(
                i["az"] != az for i in group["instances"]
            )

        assert eventually(moved, timeout=30, every=0.5), lab.app_group()
        terminating = {i["id"] for i in lab.app_group()["terminating"]}
        assert {i["id"] for i in frozen} <= terminating  # SIGKILLed, pending until thaw
    finally:
        control.thaw_az(lab, az)
    assert eventually(lambda: not lab.app_group()["terminating"], timeout=15)
    assert not any(proc.alive(i["pid"]) for i in frozen)
    assert control.wait_healthy(LabState.load("dev"), timeout=60)["healthy"]


def test_slow_clients_are_cut_off_at_the_request_timeout(lab: LabState) -> None:
    """Four clients trickling one header byte every 2 s: each gets a 408 after ~5 s."""
    port = lab.ports.http

    def trickle() -> tuple[float, bytes]:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            answer = b""
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
                try:
                    sock.sendall(bytes([byte]))
                    sock.settimeout(2.0)
                    answer += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if answer:
                    break
            return time.monotonic() - started, answer

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: trickle(), range(4)))
    for elapsed, answer in results:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert 4.5 <= elapsed <= 8.0, elapsed


def test_the_statistics_page_demands_credentials(lab: LabState) -> None:
    url = lab.endpoints["haproxy_stats"]
    assert httpx.get(url, timeout=3).status_code == 401
    password = lab.secrets()["haproxy_stats_password"]
    assert httpx.get(url, auth=("stats", password), timeout=3).status_code == 200


def test_control_planes_refuse_unauthenticated_clients(lab: LabState) -> None:
    """Sentinel, etcd and Patroni's unsafe REST endpoints demand the lab's credentials."""
    import base64

    import redis

    sentinel = lab.endpoints["sentinels"][0]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=sentinel["port"], socket_timeout=2).execute_command("SENTINEL", "MASTERS")
    key = base64.b64encode(b"/service/peakready-dev/leader").decode()
    etcd = httpx.post(f"{lab.endpoints['etcd'][0]}/v3/kv/range", json={"key": key}, timeout=3)
    assert "user name is empty" in etcd.text
    member = lab.endpoints["db_members"][0]
    rest = f"http://127.0.0.1:{member['rest_port']}"
    assert (
        httpx.post(f"{rest}/switchover", json={"leader": member["name"]}, timeout=3).status_code
        == 401
    )
    assert httpx.get(f"{rest}/cluster", timeout=3).status_code == 200  # health stays open
    authed = redis.Redis(
        port=sentinel["port"], password=lab.secrets()["sentinel_password"], socket_timeout=2
    )
    assert authed.execute_command("SENTINEL", "MASTERS")


def test_under_a_browse_flood_orders_keep_flowing_and_browsing_is_shed_fast(
    lab: LabState,
) -> None:
    """240 clients flood search and product pages (beyond the servers' maxconn of 3 x 4)
    while 4 clients place orders: HAProxy serves the orders first and sheds browsing
    with a fast 503 + Retry-After instead of queueing it."""
    import asyncio

    from peakready.load.rawhttp import Connection, Request, order_request

    port, seconds = lab.ports.http, 4.0
    found: dict[str, list[tuple[int, float, str]]] = {"order": [], "browse": []}

    async def client(kind: str, n: int, deadline: float) -> None:
        conn = Connection(port, timeout_s=10)
        i = n
        try:
            while time.monotonic() < deadline and len(found[kind]) < 200_000:
                i += 1
                if kind == "order":
                    request = order_request(1 + i % 50, prefix="flood")
                else:
                    path = "/search?q=Widget" if i % 2 else f"/products/{1 + i % 50}"
                    request = Request("GET", path)
                began = time.monotonic()
                try:
                    status = await conn.request(request)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    status = 0
                    await asyncio.sleep(0.05)
                retry = conn.headers.get("retry-after", "")
                found[kind].append((status, time.monotonic() - began, retry))
        finally:
            conn.close()

    async def flood() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(client("browse", n, deadline) for n in range(240)),
            *(client("order", n, deadline) for n in range(4)),
        )

    asyncio.run(flood())
    orders, browse = found["order"], found["browse"]
    shed = [latency for status, latency, retry in browse if status == 503 and retry == "1"]
    statuses = Counter(status for status, _, _ in orders), Counter(s for s, _, _ in browse)
    # Every order answered (201, or 409 for a product an earlier test sold out), none
    # timed out. On 0.2-core instances this flood (one client process on the same 2
    # cores) starves the tier: 3-14 % of orders got a fast, retryable 503 over 4 runs
    # (0 on the uncapped instances before); the bound keeps a regression visible.
    assert orders and {status for status, _, _ in orders} <= {201, 409, 503}, statuses
    refused = Counter(retry for status, _, retry in orders if status == 503)
    assert statuses[0][503] <= 0.2 * len(orders), (statuses, refused)
    assert len(shed) > len(browse) // 10, f"{len(shed)} of {len(browse)} browse requests shed"
    shed.sort()
    assert shed[len(shed) // 2] < 0.25, f"median shed answer {shed[len(shed) // 2]:.3f} s"
    order_latency = sorted(latency for _, latency, _ in orders)
    p99 = order_latency[int(len(order_latency) * 0.99)]
    p50 = order_latency[len(order_latency) // 2]
    print(
        f"flood: {statuses}; shed median {shed[len(shed) // 2] * 1000:.1f} ms, orders "
        f"{len(orders) / seconds:.1f}/s p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms"
    )
    assert p99 < 2.0, order_latency[-5:]


def test_up_with_a_port_in_use_is_one_line_and_starts_nothing(lab: LabState) -> None:
    base = BASE + 200
    lab_dir = REPO / ".lab" / f"pytest-{base}"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 1))
        holder.listen()
        result = cli("up", "--stack", "dev", env=lab_env(base, lab_dir))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert (
        f"port {base + 1} on 127.0.0.1 is in use (needed for HAProxy PostgreSQL write port)"
        in (lines[0])
    )
    assert not (lab_dir / "state.json").exists()


def test_unknown_stack_is_one_line() -> None:
    result = cli("up", "--stack", "nope")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("peakready: error: unknown stack 'nope'")


def test_down_leaves_no_process_and_no_port_and_is_safe_twice(lab: LabState) -> None:
    group = lab.app_group()
    pids = [p["pid"] for p in lab.processes] + [i["pid"] for i in group["instances"]]
    postmasters = [control.postmaster_pid(p) for p in lab.by_kind("patroni")]
    pids += [pid for pid in postmasters if pid]
    result = cli("down", "--stack", "dev")
    assert result.returncode == 0, result.stderr
    assert [pid for pid in pids if proc.alive(pid)] == []
    assert proc.listening_ports(range(BASE, BASE + 160)) == []
    assert not lab.cgroup.exists()
    again = cli("down", "--stack", "dev")
    assert again.returncode == 0 and "nothing to stop" in again.stdout
    status = cli("status", "--stack", "dev", "--json")
    assert status.returncode == 2
