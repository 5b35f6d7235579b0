"""Read-only views of a running lab: Patroni, Sentinel, HAProxy, search, app instances.

Every call is bounded by a short timeout so that a frozen AZ shows up as a failed
check, not as a hang.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from peakready.lab import proc as procmod
from peakready.lab.state import LabState

TIMEOUT_S = 1.0


def http_get(
    url: str, timeout: float = TIMEOUT_S, auth: tuple[str, str] | None = None
) -> tuple[int, str]:
    """``(status, body)`` of a GET (``auth``: basic credentials); status 0 when the
    server does not answer."""
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, ""


def haproxy_command(socket_path: str, command: str, timeout: float = TIMEOUT_S) -> str:
    """Send one command to HAProxy's admin socket and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def patroni_cluster(state: LabState) -> dict[str, Any]:
    """Leader, synchronous standbys and members (with lag) as Patroni reports them.

    Asks each member's REST API in turn for ``/cluster`` and returns the first answer:
    ``{"leader": name | None, "sync_standby": [names], "members": [{"name", "role",
    "state", "lag", "port", "az"}], "source": member asked}``.
    """
    members = state.endpoints.get("db_members", [])
    az_of = {m["name"]: m.get("az") for m in members}
    for member in members:
        status, body = http_get(f"http://{member['host']}:{member['rest_port']}/cluster")
        if status != 200:
            continue
        data = json.loads(body)
        out: dict[str, Any] = {"leader": None, "sync_standby": [], "members": []}
        for item in data.get("members", []):
            role = item.get("role")
            if role in ("leader", "standby_leader"):
                out["leader"] = item["name"]
            if role == "sync_standby":
                out["sync_standby"].append(item["name"])
            out["members"].append(
                {
                    "name": item["name"],
                    "role": role,
                    "state": item.get("state"),
                    "lag": item.get("lag", 0) if role != "leader" else 0,
                    "port": item.get("port"),
                    "az": az_of.get(item["name"]),
                }
            )
        out["source"] = member["name"]
        return out
    return {"leader": None, "sync_standby": [], "members": [], "source": None}


def streaming_replicas(state: LabState, leader: str | None) -> set[str]:
    """Members the leader sees streaming from it (its ``pg_stat_replication``, through
    Patroni's ``GET /patroni``): what every Patroni with etcd3 support reports the same
    way, where the members' own ``state`` differs by version (4.x ``streaming``, 3.0
    ``running``). Empty when there is no leader or it does not answer."""
    member = next((m for m in state.endpoints.get("db_members", []) if m["name"] == leader), None)
    if member is None:
        return set()
    status, body = http_get(f"http://{member['host']}:{member['rest_port']}/patroni")
    if status != 200:
        return set()
    try:
        replication = json.loads(body).get("replication") or []
    except (ValueError, AttributeError):
        return set()
    return {str(r.get("application_name")) for r in replication if r.get("state") == "streaming"}


def sentinel_master(state: LabState) -> dict[str, Any]:
    """What each Sentinel says about the monitored master.

    ``{"master": "host:port" | None (the majority answer), "agreed": bool,
    "sentinels": {"sentinel-<az>": {"master", "num_slaves", "num_other_sentinels",
    "flags"} | None}}``.
    """
    # Imported here: redis-py only for the probes that ask Redis.
    import redis

    name = state.endpoints.get("sentinel_master", "")
    password = state.secrets().get("sentinel_password")
    views: dict[str, dict[str, Any] | None] = {}
    for proc in state.by_kind("sentinel"):
        client = redis.Redis(
            host="127.0.0.1",
            port=proc["port"],
            password=password,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            decode_responses=True,
        )
        try:
            info = client.execute_command("SENTINEL", "MASTER", name)
            fields = (
                dict(zip(info[::2], info[1::2], strict=False)) if isinstance(info, list) else info
            )
            views[proc["name"]] = {
                "master": f"{fields['ip']}:{fields['port']}",
                "num_slaves": int(fields.get("num-slaves", 0)),
                "num_other_sentinels": int(fields.get("num-other-sentinels", 0)),
                "flags": fields.get("flags", ""),
            }
        except (redis.RedisError, OSError, KeyError):
            views[proc["name"]] = None
        finally:
            client.close()
    answers = [v["master"] for v in views.values() if v]
    master = max(set(answers), key=answers.count) if answers else None
    return {
        "master": master,
        "agreed": bool(answers) and len(set(answers)) == 1 and len(answers) == len(views),
        "sentinels": views,
    }


def redis_roles(state: LabState) -> dict[str, str | None]:
    """``redis-<az>`` → ``master`` / ``slave`` / None (not answering)."""
    # Imported here: redis-py only for the probes that ask Redis.
    import redis

    password = state.secrets()["redis_password"]
    roles: dict[str, str | None] = {}
    for proc in state.by_kind("redis"):
        client = redis.Redis(
            host="127.0.0.1",
            port=proc["port"],
            password=password,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
        try:
            info: dict[str, Any] = client.info("replication")  # type: ignore[assignment]
            roles[proc["name"]] = str(info.get("role"))
        except (redis.RedisError, OSError):
            roles[proc["name"]] = None
        finally:
            client.close()
    return roles


def haproxy_servers(state: LabState) -> dict[str, str]:
    """``"<backend>/<server>"`` → HAProxy status (``UP``, ``DOWN``, ``MAINT``, …).

    App slots in maintenance (unused slots of the server-template) are left out.
    """
    socket_path = state.endpoints.get("haproxy_socket", "")
    try:
        csv = haproxy_command(socket_path, "show stat")
    except OSError:
        return {}
    return parse_show_stat(csv)


def parse_show_stat(csv: str) -> dict[str, str]:
    lines = csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    col = {name: i for i, name in enumerate(header)}
    servers: dict[str, str] = {}
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) < len(header):
            continue
        backend, server = fields[col["pxname"]], fields[col["svname"]]
        if server in ("FRONTEND", "BACKEND") or backend == "stats":
            continue
        status = fields[col["status"]]
        if backend == "storefront" and status.startswith("MAINT"):
            continue
        servers[f"{backend}/{server}"] = status
    return servers


def search_answers(host: str, port: int, index: str, timeout: float = TIMEOUT_S) -> int | None:
    """Documents a node's ``index`` returns for a match-all query; None when it fails."""
    import pymysql  # type: ignore[import-untyped]

    try:
        conn = pymysql.connect(
            host=host,
            port=port,
            user="",
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        )
    except pymysql.MySQLError:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {index} LIMIT 1")
            rows = cursor.fetchall()
            cursor.execute("SHOW META")
            meta = dict(cursor.fetchall())
        return int(meta.get("total_found", len(rows)))
    except pymysql.MySQLError:
        return None
    finally:
        conn.close()


def app_instances(state: LabState) -> list[dict[str, Any]]:
    """The supervisor's instances, each with ``ready`` (its ``/readyz`` answered 200)."""
    instances = []
    for inst in state.app_group().get("instances", []):
        status, _ = http_get(f"http://127.0.0.1:{inst['port']}/readyz")
        instances.append({**inst, "ready": status == 200})
    return instances


def etcd_health(state: LabState) -> dict[str, bool]:
    health = {}
    for proc in state.by_kind("etcd"):
        status, body = http_get(f"http://127.0.0.1:{proc['port']}/health")
        health[proc["name"]] = status == 200 and '"true"' in body
    return health


def memory_pss_kib(state: LabState) -> dict[str, int]:
    """Proportional set size (KiB) of every process in the lab's cgroups, per cgroup."""

    totals: dict[str, int] = {}
    for group in [state.cgroup, *(state.cgroup / az for az in state.azs)]:
        total = sum(pss_kib(pid) or 0 for pid in procmod.cgroup_pids(group))
        totals[group.name if group != state.cgroup else "regional"] = total
    return totals


def pss_kib(pid: int) -> int | None:
    """Proportional set size (KiB) of one process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))
