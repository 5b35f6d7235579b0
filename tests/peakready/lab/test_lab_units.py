"""Fast checks of the lab's pure parts: ports, readiness rules, parsing, bad input."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from peakready.errors import PeakreadyError
from peakready.lab import assembly, health, observe, plan, proc, state, stop
from peakready.lab.components.load_balancer import haproxy_ready
from peakready.lab.components.sentinel import sentinels_converged
from peakready.topology import OUTPUT_KEYS, QUEUE_OUTPUT_KEYS, Topology

REPO = Path(__file__).resolve().parents[3]


def dev_topology(**lab: object) -> Topology:
    base = Topology.load("dev")
    if not lab:
        return base
    data = base.model_dump()
    data["lab"].update(lab)
    return Topology.model_validate(data)


def test_ports_follow_the_internals_table() -> None:
    ports = state.Ports(20000)
    assert (ports.http, ports.db_write, ports.db_read, ports.stats) == (20000, 20001, 20002, 20003)
    assert (ports.etcd_client(2), ports.etcd_peer(0)) == (20012, 20020)
    assert (ports.postgres(1), ports.patroni(1)) == (20031, 20041)
    assert (ports.redis(0), ports.sentinel(2)) == (20050, 20062)
    assert (ports.search_sql(1), ports.search_api(1)) == (20071, 20081)
    assert (ports.app(0), ports.app(49)) == (20100, 20149)
    assert (ports.amqp(0), ports.amqp_dist(2), ports.epmd) == (20004, 20009, 20013)
    assert (ports.backoffice(0), ports.backoffice(5)) == (20083, 20088)
    assert (ports.backoffice_db, ports.backoffice_http) == (20026, 20028)
    assert max(ports.block) == 20159 < 32768


def test_every_server_port_is_distinct_and_named() -> None:
    named = assembly.server_ports(plan.make_plan(dev_topology()))
    # HAProxy 4; per AZ etcd 2, PostgreSQL + Patroni 2, Redis + Sentinel 2, searchd 2 and
    # a postgres_exporter, RabbitMQ AMQP + distribution; Prometheus, Alertmanager,
    # 4 more exporters and the checkout probe; the broker's epmd and CLI ports; the back
    # office's database, report replica and HAProxy front; the app and worker slots
    slots = state.APP_SLOTS + state.BACKOFFICE_SLOTS
    assert len(named) == 4 + 3 * 11 + 7 + 1 + 6 + 3 + slots
    assert all(20000 <= port < 20160 for port in named)


def test_outputs_carry_every_design_key() -> None:
    lab_plan = plan.make_plan(dev_topology())
    outputs = assembly.outputs(lab_plan, "pg-eu-central-1b")
    assert set(outputs) == set(OUTPUT_KEYS) | set(QUEUE_OUTPUT_KEYS)
    assert outputs["queue_broker"] == "peakready-dev"
    assert outputs["backoffice_endpoint"] == "http://127.0.0.1:20028"
    assert outputs["db_primary"] == "pg-eu-central-1b"
    assert outputs["db_replicas"] == ["pg-eu-central-1a", "pg-eu-central-1c"]
    assert outputs["target"] == "lab"


def test_app_dsn_is_multi_host_and_read_write() -> None:
    dsn = plan.make_plan(dev_topology()).dsn("read-write")
    assert "host=127.0.0.1,127.0.0.1,127.0.0.1" in dsn
    assert "port=20030,20031,20032" in dsn
    assert "target_session_attrs=read-write" in dsn
    assert "password" not in dsn


def test_binary_override_that_is_missing_names_the_setting(tmp_path: Path) -> None:
    lab_plan = plan.make_plan(dev_topology(binaries={"haproxy": str(tmp_path / "haproxy")}))
    with pytest.raises(PeakreadyError) as caught:
        lab_plan.resolve_binaries(assembly.packages())
    assert caught.value.lines == [
        f"peakready:lab.binaries.haproxy: {tmp_path / 'haproxy'} is not an executable file"
    ]


def test_binary_missing_from_path_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_which = plan.shutil.which

    def which(name: str, path: str | None = None) -> str | None:
        return None if name == "searchd" else real_which(name, path=path)

    monkeypatch.setattr(plan.shutil, "which", which)
    lab_plan = plan.make_plan(dev_topology())
    with pytest.raises(PeakreadyError) as caught:
        lab_plan.resolve_binaries(assembly.packages())
    assert len(caught.value.lines) == 1
    assert "searchd: not found on PATH (Debian package sphinxsearch" in caught.value.lines[0]


def test_haproxy_readiness_needs_one_writer_all_readers_and_the_whole_group() -> None:
    servers = {
        "postgres_write/pg-a": "UP",
        "postgres_write/pg-b": "DOWN",
        "postgres_write/pg-c": "DOWN",
        "postgres_read/pg-a": "DOWN",
        "postgres_read/pg-b": "UP",
        "postgres_read/pg-c": "UP",
        "storefront/app0": "UP",
        "storefront/app1": "UP",
        "storefront/app2": "DOWN",
    }
    ok, detail = haproxy_ready(servers, 3, 3)
    assert not ok and "app 2/3 UP" in detail
    servers["storefront/app2"] = "UP"
    assert haproxy_ready(servers, 3, 3)[0]
    servers["postgres_write/pg-b"] = "UP"  # two writers: split brain, not ready
    assert not haproxy_ready(servers, 3, 3)[0]


def test_show_stat_parsing_skips_unused_template_slots() -> None:
    csv = (
        "# pxname,svname,qcur,status,weight\n"
        "storefront,FRONTEND,0,OPEN,\n"
        "storefront,app0,0,UP,1\n"
        "storefront,app1,0,MAINT,1\n"
        "postgres_write,pg-a,0,DOWN,1\n"
        "stats,BACKEND,0,UP,0\n"
    )
    assert observe.parse_show_stat(csv) == {
        "storefront/app0": "UP",
        "postgres_write/pg-a": "DOWN",
    }


def test_sentinels_converge_only_when_all_see_replicas_and_peers() -> None:
    view = {
        "master": "127.0.0.1:20050",
        "agreed": True,
        "sentinels": {
            f"sentinel-{az}": {
                "master": "127.0.0.1:20050",
                "num_slaves": 2,
                "num_other_sentinels": 2,
                "flags": "master",
            }
            for az in "abc"
        },
    }
    assert sentinels_converged(view, 3)
    view["sentinels"]["sentinel-b"]["num_other_sentinels"] = 1
    assert not sentinels_converged(view, 3)


def test_alive_treats_zombies_as_dead() -> None:
    import subprocess

    child = subprocess.Popen(["true"])
    for _ in range(100):
        if not proc.alive(child.pid):
            break
        import time

        time.sleep(0.02)
    assert not proc.alive(child.pid)  # exited, not yet reaped: a zombie
    child.wait()


def test_status_without_a_lab_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path / "none"))
    code, report = health.status("dev")
    assert code == 2
    assert report["healthy"] is False and "no lab running" in report["error"]


def test_up_on_a_stale_state_file_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path))
    # One PID that no longer exists, one that runs but is not the lab's (reused).
    processes = [
        {"name": "haproxy", "pid": 2**22 + 7},
        {"name": "supervisor", "pid": os.getpid()},
    ]
    (tmp_path / "state.json").write_text(
        json.dumps({"stack": "dev", "lab_dir": str(tmp_path), "processes": processes})
    )
    with pytest.raises(PeakreadyError) as caught:
        health.running_state("dev")
    assert caught.value.lines == [
        f"stale state file {tmp_path / 'state.json'}: none of its recorded processes runs; "
        "run `peakready lab down --stack dev` to clear it"
    ]


def test_secrets_file_is_private_and_stable(tmp_path: Path) -> None:
    keys = assembly.secret_keys()
    first = state.load_or_create_secrets(tmp_path, keys)
    assert set(first) == set(keys)
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert state.load_or_create_secrets(tmp_path, keys) == first


def test_playbooks_pass_yamllint() -> None:
    import subprocess
    import sys

    mine = [
        "playbooks/project/lab.yml",
        "playbooks/project/storefront-aws.yml",
        "playbooks/inventory",
        "playbooks/env/settings",
        *(
            f"playbooks/roles/{role}"
            for role in ("haproxy", "patroni", "sentinel", "sphinx", "pgbackrest", "storefront")
        ),
    ]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "yamllint"), "-s", *mine],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_playbooks_pass_ansible_lint() -> None:
    import shutil
    import subprocess
    import sys

    lint = Path(sys.executable).parent / "ansible-lint"
    if not lint.exists() and shutil.which("ansible-lint") is None:
        pytest.skip("ansible-lint is not installed (pip install -e '.[dev]')")
    roles = [f"roles/{r}" for r in ("haproxy", "patroni", "sentinel", "sphinx", "pgbackrest")]
    result = subprocess.run(
        [
            str(lint if lint.exists() else "ansible-lint"),
            "-q",
            "--nocolor",
            "project/lab.yml",
            "project/storefront-aws.yml",
            *roles,
            "roles/storefront",
        ],
        cwd=REPO / "playbooks",
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def make_supervisor(tmp_path: Path, **group: Any) -> Any:
    """The app group of a supervisor over three AZs (``group`` overrides its settings)."""
    from peakready.lab.autoscaler import ScalingPolicy
    from peakready.lab.supervisor import Group

    env_file = tmp_path / "storefront.env"
    env_file.write_text("# rendered\nPEAKREADY_APP_DB_DSN=host=x\nPEAKREADY_APP_REDIS_URL=\n")
    azs = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
    for az in azs:
        (tmp_path / "cg" / az).mkdir(parents=True, exist_ok=True)
        (tmp_path / "cg" / az / "freezer.state").write_text("THAWED\n")
    shared = {
        "lab_dir": str(tmp_path),
        "azs": azs,
        "cgroup": str(tmp_path / "cg"),
        "cpu_cgroup": str(tmp_path / "cpu"),
        "haproxy_socket": str(tmp_path / "none.sock"),
    }
    config = {
        "name": "app",
        "group": "storefront-dev",
        "desired": 3,
        "slots": 5,
        "slot_port": 20100,
        "scaling": ScalingPolicy(3, 6, 0.4, 0.2, 2.0, 30.0).as_dict(),
        "haproxy_backend": "storefront",
        "server_prefix": "app",
        "command": ["python3", "-m", "peakready.app"],
        "env_file": str(env_file),
        "env_prefix": "PEAKREADY_APP_",
        "group_file": "app_group.json",
        **group,
    }
    return Group(shared, config)


def test_supervisor_scales_in_the_newest_instance_of_the_az_with_the_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peakready.lab import supervisor as module
    from peakready.lab.supervisor import Instance

    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(module.os, "kill", lambda pid, sig: signalled.append((pid, sig)))
    sup = make_supervisor(tmp_path)
    sup.instances = [
        Instance("app-0", "eu-central-1a", 0, 20100, 101, "", started_at=1.0),
        Instance("app-1", "eu-central-1b", 1, 20101, 102, "", started_at=2.0),
        Instance("app-2", "eu-central-1b", 2, 20102, 103, "", started_at=3.0),
        Instance("app-3", "eu-central-1c", 3, 20103, 104, "", started_at=4.0),
    ]
    sup.scale_in()
    assert [i.id for i in sup.instances] == ["app-0", "app-1", "app-3"]
    assert [i.id for i in sup.terminating] == ["app-2"]
    assert signalled == [(103, signal.SIGTERM)]  # a graceful stop: it finishes what it serves


def test_supervisor_places_in_the_healthy_az_with_fewest_instances(tmp_path: Path) -> None:
    from peakready.lab.supervisor import Instance

    sup = make_supervisor(tmp_path)
    sup.instances = [
        Instance("app-0", "eu-central-1a", 0, 20100, 1, ""),
        Instance("app-1", "eu-central-1b", 1, 20101, 2, ""),
    ]
    assert sup.pick_az() == "eu-central-1c"
    (tmp_path / "cg" / "eu-central-1c" / "freezer.state").write_text("FROZEN\n")
    assert sup.pick_az() == "eu-central-1a"  # a tie, broken in AZ order
    sup.instances[0].failures = 1  # an instance failing its probe marks its AZ impaired
    assert sup.pick_az() == "eu-central-1b"


def test_supervisor_takes_the_next_free_slot_not_the_vacated_one(tmp_path: Path) -> None:
    from peakready.lab.supervisor import Instance

    sup = make_supervisor(tmp_path)
    assert [sup.next_slot() for _ in range(3)] == [0, 1, 2]
    sup.instances = [Instance("app-1", "eu-central-1b", 1, 20101, 2, "")]
    sup.terminating = [Instance("app-3", "eu-central-1a", 3, 20103, 3, "")]
    assert sup.next_slot() == 4  # after the last one used; 3 is still terminating
    assert sup.next_slot() == 0  # wraps around, skipping 1 (in use)
    assert sup.next_slot() == 2


def test_supervisor_env_skips_comments_and_empty_values(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path)
    assert sup.env["PEAKREADY_APP_DB_DSN"] == "host=x"
    assert "PEAKREADY_APP_REDIS_URL" not in sup.env


def test_the_supervisor_probes_every_group_and_a_silent_instance_counts_0(tmp_path: Path) -> None:
    import http.server
    import socket
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from peakready.lab.supervisor import Instance, Supervisor

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refused
        sup = Supervisor.__new__(Supervisor)
        app, office = make_supervisor(tmp_path), make_supervisor(tmp_path, name="backoffice")
        app.instances = [Instance("app-0", "eu-central-1a", 0, server.server_port, 11, "")]
        office.instances = [
            Instance("backoffice-0", "eu-central-1b", 0, closed.getsockname()[1], 12, "")
        ]
        sup.groups = [app, office]
        with ThreadPoolExecutor(2) as pool:
            assert sup.probe(pool) == {11: 200, 12: 0}
    server.shutdown()


def test_a_group_without_policy_takes_its_desired_capacity_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "backoffice").mkdir()
    desired = tmp_path / "backoffice" / "desired"
    group = make_supervisor(
        tmp_path, name="backoffice", scaling=None, env_file=None, desired_file="backoffice/desired"
    )
    group.read_desired()
    assert group.desired == 0  # no file yet: no worker before its queue and database
    desired.write_text("3\n")
    group.read_desired()
    assert group.desired == 3
    desired.write_text("99\n")
    group.read_desired()
    assert group.desired == 5  # at most its slots
    desired.write_text("junk\n")
    group.read_desired()
    assert group.desired == 0
    assert "PEAKREADY_APP_DB_DSN" not in group.env  # no env file: the command reads its own


@pytest.mark.lab
def test_down_without_a_state_file_still_stops_what_is_left_in_the_cgroups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    if not state.FREEZER_ROOT.exists():
        pytest.skip("no cgroup v1 freezer on this machine")
    monkeypatch.setenv("PEAKREADY_LAB_DIR", str(tmp_path))
    monkeypatch.setenv("PEAKREADY_LAB_PORT_BASE", "20400")
    lab_plan = plan.make_plan(dev_topology())
    proc.ensure_cgroups(lab_plan.cgroup, lab_plan.azs)
    child = proc.spawn(
        ["sleep", "60"],
        env={"PATH": "/usr/bin:/bin"},
        log=tmp_path / "logs" / "sleep.log",
        cgroup=lab_plan.cgroup / lab_plan.azs[1],
        cwd=tmp_path,
    )
    try:
        assert proc.cgroup_pids(lab_plan.cgroup / lab_plan.azs[1]) == [child.pid]
        out = io.StringIO()
        assert stop.down("dev", Console(file=out, width=200)) == 0
        child.wait(timeout=5)
        assert "stopped 1 lab processes" in out.getvalue()
        assert not lab_plan.cgroup.exists()
    finally:
        if child.poll() is None:
            child.kill()
        proc.remove_cgroups(lab_plan.cgroup)


def test_a_scaling_decision_is_followed_and_recorded_in_the_groups_timeline(
    tmp_path: Path,
) -> None:
    from peakready.lab.autoscaler import SCALING_FILE, Decision

    group = make_supervisor(tmp_path)
    group.follow(Decision(1.0, 5, 3, "requests per target above the target", 80.0, 60.0), "%g/%g")
    assert group.desired == 5
    recorded = json.loads((tmp_path / SCALING_FILE).read_text())
    assert recorded == {
        "event": "scale",
        "at": 1.0,
        "desired": 5,
        "previous": 3,
        "reason": "requests per target above the target",
        "metric": 80.0,
        "target": 60.0,
    }
