"""Real servers for the storefront tests: PostgreSQL 15, Redis + Sentinel, searchd, the app.

Ports 23000-23199 (this area's base). Every server is started by a fixture and torn down
in its finaliser, also when a test fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 23030
REDIS_PORTS = (23050, 23051)
SENTINEL_PORT = 23060
SENTINEL_MASTER = "peakready-apptest"
SEARCH_PORT, SEARCH_API_PORT = 23070, 23080
APP_PORT = 23100
SEED_PRODUCTS = 40
INITIAL_STOCK = 100
REPO = Path(__file__).resolve().parents[3]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, psycopg.Error, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready within {timeout}s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_port_free(port: int) -> None:
    if port_open(port):
        pytest.fail(f"port {port} on 127.0.0.1 is already in use (a leftover test server?)")


@dataclass
class Server:
    """One server process started by a fixture; can be frozen, thawed, stopped, restarted."""

    name: str
    cmd: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 15) -> None:
        require_port_free(self.port)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        wait_for(lambda: self._alive() and port_open(self.port), timeout, self.name)

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited; see {self.log}: {self.log.read_text()[-2000:]}"
            )
        return True

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Postgres:
    root: Path
    port: int
    superuser_password: str
    app_password: str

    @property
    def data(self) -> Path:
        return self.root / "pgdata"

    def admin_dsn(self, dbname: str = "shop") -> str:
        return (
            f"host=127.0.0.1 port={self.port} dbname={dbname} user=postgres "
            f"password={self.superuser_password} connect_timeout=2"
        )

    @property
    def app_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=shop user=shop connect_timeout=2"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "postgres.log"),
                "-w",
                "-t",
                "30",
                *args,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def execute(self, sql: str, params: tuple[object, ...] = (), dbname: str = "shop") -> list:
        with psycopg.connect(self.admin_dsn(dbname), autocommit=True) as conn:
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="peakready-apptest-", dir="/tmp"))
    root.chmod(0o755)  # the postgres user must reach its data dir below
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[Postgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (make setup)")
    require_port_free(PG_PORT)
    pg = Postgres(workdir / "pg", PG_PORT, secrets.token_hex(16), secrets.token_hex(16))
    pg.root.mkdir()
    pwfile = pg.root / "pwfile"
    pwfile.write_text(pg.superuser_password + "\n")
    shutil.chown(pg.root, "postgres", "postgres")
    shutil.chown(pwfile, "postgres", "postgres")
    pwfile.chmod(0o600)
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "initdb"),
            "-D",
            str(pg.data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pwfile.unlink()
    with (pg.data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {PG_PORT}\n"
            f"unix_socket_directories = '{pg.root}'\nfsync = off\n"
            "max_connections = 100\nshared_buffers = 32MB\n"
        )
    pg.pg_ctl("start")
    try:
        pg.execute(f"CREATE ROLE shop LOGIN PASSWORD '{pg.app_password}'", dbname="postgres")
        pg.execute("CREATE DATABASE shop OWNER shop", dbname="postgres")
        yield pg
    finally:
        pg.pg_ctl("stop", "-m", "immediate")


@dataclass
class Redis:
    primary: Server
    replica: Server
    sentinel: Server
    password: str
    master_name: str = SENTINEL_MASTER

    @property
    def servers(self) -> list[Server]:
        return [self.primary, self.replica, self.sentinel]


def make_redis(root: Path, ports: tuple[int, int], sentinel_port: int) -> Redis:
    """A Redis primary + replica and one Sentinel (quorum 1), not started yet."""
    root.mkdir()
    password = secrets.token_hex(16)
    common = [
        "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root),
        "--requirepass", password, "--masterauth", password,
        "--repl-diskless-sync-delay", "0", "--daemonize", "no",
    ]  # fmt: skip
    primary = Server(
        "redis-primary", ["redis-server", "--port", str(ports[0]), *common], ports[0],
        root / "primary.log",
    )  # fmt: skip
    replica = Server(
        "redis-replica",
        ["redis-server", "--port", str(ports[1]), *common,
         "--replicaof", "127.0.0.1", str(ports[0])],
        ports[1], root / "replica.log",
    )  # fmt: skip
    conf = root / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {root}\ndaemonize no\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {ports[0]} 1\n"
        f"sentinel auth-pass {SENTINEL_MASTER} {password}\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} 3000\n"
    )
    sentinel = Server(
        "sentinel", ["redis-sentinel", str(conf)], sentinel_port, root / "sentinel.log"
    )
    return Redis(primary, replica, sentinel, password)


@pytest.fixture(scope="session")
def redis_servers(workdir: Path) -> Iterator[Redis]:
    if shutil.which("redis-server") is None or shutil.which("redis-sentinel") is None:
        pytest.skip("redis-server/redis-sentinel are not installed (make setup)")
    redis = make_redis(workdir / "redis", REDIS_PORTS, SENTINEL_PORT)
    try:
        for server in redis.servers:
            server.start()
        yield redis
    finally:
        for server in reversed(redis.servers):
            server.stop()


def make_searchd(root: Path, port: int, api_port: int) -> Server:
    """One searchd with the app's RT index ``products``, not started yet."""
    from peakready.app.search import sphinx_index_config

    root.mkdir()
    conf = root / "sphinx.conf"
    conf.write_text(
        sphinx_index_config("products", str(root / "products")) + "searchd\n{\n"
        f"    listen = 127.0.0.1:{port}:mysql41\n"
        f"    listen = 127.0.0.1:{api_port}\n"
        f"    log = {root}/searchd.log\n    query_log = {root}/query.log\n"
        f"    pid_file = {root}/searchd.pid\n    binlog_path = {root}\n"
        "    workers = threads\n}\n"
    )
    return Server(
        f"searchd-{port}",
        ["searchd", "--config", str(conf), "--nodetach"],
        port,
        root / "stdout.log",
    )


@pytest.fixture(scope="session")
def searchd(workdir: Path) -> Iterator[Server]:
    if shutil.which("searchd") is None:
        pytest.skip("searchd is not installed (make setup)")
    server = make_searchd(workdir / "sphinx", SEARCH_PORT, SEARCH_API_PORT)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class App:
    url: str
    server: Server
    audit_token: str
    seed_products: int = SEED_PRODUCTS
    initial_stock: int = INITIAL_STOCK


def start_app(
    workdir: Path,
    postgres: Postgres,
    port: int,
    redis: Redis | None,
    search_port: int | None,
    **overrides: str,
) -> App:
    """Start one storefront instance as a subprocess and wait for its readiness."""
    token = secrets.token_hex(16)
    env = {
        "PEAKREADY_APP_HOST": "127.0.0.1",
        "PEAKREADY_APP_PORT": str(port),
        "PEAKREADY_APP_AZ": "test-az-a",
        "PEAKREADY_APP_INSTANCE_ID": f"app-test-{port}",
        "PEAKREADY_APP_DB_DSN": postgres.app_dsn,
        "PEAKREADY_APP_DB_PASSWORD": postgres.app_password,
        "PEAKREADY_APP_DB_POOL_MAX": "10",
        "PEAKREADY_APP_DB_CHECK_TIMEOUT_S": "0.5",
        "PEAKREADY_APP_DB_QUERY_TIMEOUT_S": "2",
        "PEAKREADY_APP_AUDIT_TOKEN": token,
        "PEAKREADY_APP_DEPENDENCY_TIMEOUT_S": "1.0",
        "PEAKREADY_APP_DEPENDENCY_BACKOFF_S": "1",
        "PEAKREADY_APP_CACHE_TTL_S": "30",
        "PEAKREADY_APP_MIGRATE": "true",
        "PEAKREADY_APP_SEED_PRODUCTS": str(SEED_PRODUCTS),
        "PEAKREADY_APP_INITIAL_STOCK": str(INITIAL_STOCK),
        "PYTHONPATH": str(REPO),
    }
    if redis is not None:
        env |= {
            "PEAKREADY_APP_REDIS_SENTINELS": f"127.0.0.1:{redis.sentinel.port}",
            "PEAKREADY_APP_REDIS_MASTER": redis.master_name,
            "PEAKREADY_APP_REDIS_PASSWORD": redis.password,
        }
    if search_port is not None:
        env |= {
            "PEAKREADY_APP_SEARCH_BACKEND": "sphinx",
            "PEAKREADY_APP_SEARCH_HOSTS": f"127.0.0.1:{search_port}",
            "PEAKREADY_APP_SEARCH_INDEX": "products",
        }
    env |= {f"PEAKREADY_APP_{k.upper()}": v for k, v in overrides.items()}
    server = Server(
        f"app-{port}",
        [sys.executable, "-m", "peakready.app"],
        port,
        workdir / f"app-{port}.log",
        env=env,
    )
    server.start(timeout=30)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, 30, "app readiness")
    except TimeoutError:
        server.stop()
        raise
    return App(url, server, token)


@pytest.fixture(scope="session")
def app_server(
    workdir: Path, postgres: Postgres, redis_servers: Redis, searchd: Server
) -> Iterator[App]:
    from peakready.app.search import feed_sphinx

    app = start_app(
        workdir, postgres, APP_PORT, redis_servers, SEARCH_PORT, instance_id="app-test-0"
    )
    try:
        with psycopg.connect(postgres.admin_dsn()) as conn:
            feed_sphinx([("127.0.0.1", SEARCH_PORT)], "products", conn)
        yield app
    finally:
        app.server.stop()


@pytest.fixture
def extra_apps(workdir: Path, postgres: Postgres) -> Iterator[list[App]]:
    """Instances a test starts itself with :func:`start_app`; stopped after the test."""
    apps: list[App] = []
    try:
        yield apps
    finally:
        for app in apps:
            app.server.stop()


@dataclass(frozen=True)
class Helpers:
    """Conftest functions for test modules (importlib mode cannot import conftest)."""

    make_redis: Callable[[Path, tuple[int, int], int], Redis]
    make_searchd: Callable[[Path, int, int], Server]
    start_app: Callable[..., App]
    wait_for: Callable[[Callable[[], bool], float, str], None]
    port_open: Callable[[int], bool]


@pytest.fixture(scope="session")
def helpers() -> Helpers:
    return Helpers(make_redis, make_searchd, start_app, wait_for, port_open)
