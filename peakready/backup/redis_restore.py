"""Redis: snapshot the primary (BGSAVE), restore the RDB into a scratch server, compare keys."""

from __future__ import annotations

import contextlib
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import redis

from peakready.backup.scratch import ScratchRedis, free_port, wait_for

MAX_KEYS = 200_000  # bound on the keys compared (a lab cache holds far fewer)
MARKERS = 10


def find_primary(nodes: list[dict[str, Any]], password: str | None) -> redis.Redis | None:
    """The node that reports ``role:master`` (asked directly: no Sentinel round-trip)."""
    for node in nodes:
        client = redis.Redis(
            host=node["host"], port=int(node["port"]), password=password, socket_timeout=2
        )
        try:
            if _info(client, "replication").get("role") == "master":
                return client
        except redis.RedisError:
            pass
        client.close()
    return None


def drill_redis(
    nodes: list[dict[str, Any]], password: str | None, work: Path, ports: range, run_id: str
) -> dict[str, Any]:
    """Snapshot, restore and verify; returns the ``redis`` section of the summary."""
    result: dict[str, Any] = {"passed": False, "reason": None}
    primary = find_primary(nodes, password)
    if primary is None:
        result["reason"] = "redis: no primary answered (role:master) among the lab's nodes"
        return result
    markers = {
        f"peakready:backup-drill:{run_id}:{i}": f"v{i}-{time.time()}" for i in range(MARKERS)
    }
    try:
        for key, value in markers.items():
            primary.set(key, value)
        before = _persistent_keys(primary)
        started = time.monotonic()
        saved_at = _bgsave(primary)
        if saved_at is None:
            result["reason"] = "redis: BGSAVE on the primary did not complete within 60 s"
            return result
        config = cast(dict[str, str], primary.config_get("dir"))
        config.update(cast(dict[str, str], primary.config_get("dbfilename")))
        source = Path(config["dir"]) / config["dbfilename"]
        copy = work / "dump.rdb"
        shutil.copyfile(source, copy)
        result["snapshot"] = str(source)
        result["snapshot_bytes"] = copy.stat().st_size
        with ScratchRedis(work, copy, free_port(ports)) as scratch:
            restored = redis.Redis(
                host="127.0.0.1", port=scratch.port, password=scratch.password, socket_timeout=2
            )
            if not wait_for(lambda: _loaded(restored), timeout=30):
                result["reason"] = (
                    f"redis: scratch server on port {scratch.port} never loaded {copy.name}"
                )
                return result
            restored_keys = {k.decode() for k in restored.scan_iter(count=1000)}
            values = cast(list[bytes | None], restored.mget(list(markers)))
            result["rto_s"] = round(time.monotonic() - started, 3)
            result["port"] = scratch.port
            restored.close()
        bad_markers = [
            k for k, v in zip(markers, values, strict=True) if v is None or v.decode() != markers[k]
        ]
        missing = sorted(before - restored_keys)
        result.update(
            keys_before=len(before),
            keys_restored=len(restored_keys),
            missing_keys=len(missing),
            markers_verified=MARKERS - len(bad_markers),
        )
        if bad_markers:
            result["reason"] = (
                f"redis: {len(bad_markers)} marker keys missing or wrong, e.g. {bad_markers[0]}"
            )
        elif missing:
            result["reason"] = (
                f"redis: {len(missing)} keys missing from the snapshot, e.g. {missing[0]}"
            )
        else:
            result["passed"] = True
        return result
    except (redis.RedisError, OSError) as exc:
        result["reason"] = f"redis: {type(exc).__name__}: {exc}"[:300]
        return result
    finally:
        with contextlib.suppress(redis.RedisError):
            primary.delete(*markers)
        primary.close()


# private


def _persistent_keys(client: redis.Redis) -> set[str]:
    """Keys without a TTL (keys with one may expire between snapshot and comparison)."""
    keys: set[str] = set()
    for n, key in enumerate(client.scan_iter(count=1000)):
        if n >= MAX_KEYS:
            break
        if client.ttl(key) == -1:
            keys.add(key.decode())
    return keys


def _bgsave(client: redis.Redis, timeout: float = 60) -> float | None:
    last = cast(datetime, client.lastsave())
    if time.time() - last.timestamp() < 1.1:
        time.sleep(1.1)  # LASTSAVE counts seconds: make ours distinguishable
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.bgsave()
            break
        except redis.ResponseError:  # a save already running: wait for it, then ours
            time.sleep(0.2)
    while time.monotonic() < deadline:
        info = _info(client, "persistence")
        if (
            not info.get("rdb_bgsave_in_progress")
            and client.lastsave() != last
            and info.get("rdb_last_bgsave_status") == "ok"
        ):
            return time.time()
        time.sleep(0.1)
    return None


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    return cast(dict[str, Any], client.info(section))


def _loaded(client: redis.Redis) -> bool:
    try:
        return bool(client.ping()) and _info(client, "persistence").get("loading") == 0
    except redis.RedisError:
        return False
