"""``lab up``: start the stack's shape from real servers, a loop over the components.

``up`` checks everything it can before starting anything (stack, binaries, state file,
ports), renders the configuration with the Ansible roles, then ticks every component
(:data:`peakready.lab.components.COMPONENTS`) until each reports ready: a component
starts its processes detached into their AZ's freezer cgroup as soon as their files are
rendered and what they need runs, and records real PIDs in ``state.json`` as it goes.
On any failure or Ctrl-C it stops what it started.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.live import Live
from rich.table import Table

from peakready.errors import PeakreadyError
from peakready.lab import assembly
from peakready.lab import proc as procmod
from peakready.lab.assembly import COMPONENTS
from peakready.lab.components.base import ProcessSpec
from peakready.lab.health import running_state
from peakready.lab.plan import UP_TIMEOUT_S, Plan, make_plan
from peakready.lab.render import Playbook, start_playbook
from peakready.lab.state import LabState, load_or_create_secrets
from peakready.lab.stop import teardown
from peakready.topology import Topology

RENDER_ROW = "configuration (ansible roles)"


class Tracker:
    """The live table ``up`` shows: one row per thing it waits on."""

    ICONS: ClassVar[dict[str, str]] = {
        "wait": "[yellow]…[/]",
        "ok": "[green]✔[/]",
        "fail": "[red]✘[/]",
    }

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def set(self, name: str, status: str, detail: str = "") -> None:
        with self.lock:
            if status == "ok":
                previous = self.rows.get(name)
                if previous and previous[0] == "ok" and previous[1].startswith(detail):
                    return
                detail = f"{detail} ({time.monotonic() - self.t0:.1f}s)"
            self.rows[name] = (status, detail)

    def pending(self) -> list[str]:
        return [name for name, (status, _) in self.rows.items() if status != "ok"]

    def __rich__(self) -> Table:
        table = Table(
            title=f"peakready lab up — {time.monotonic() - self.t0:4.1f}s", title_justify="left"
        )
        table.add_column("")
        table.add_column("part")
        table.add_column("state")
        with self.lock:
            for name, (status, detail) in self.rows.items():
                table.add_row(self.ICONS.get(status, status), name, detail)
        return table


class Starter:
    """Starts one lab and records it (the components' ``UpContext``)."""

    def __init__(self, plan: Plan, tracker: Tracker) -> None:
        self.plan = plan
        self.tracker = tracker
        self.secrets: dict[str, str] = {}
        self.state = LabState(plan.lab / "state.json", {})
        self.facts: dict[str, Any] = {}
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.jobs: dict[str, Future[Any]] = {}
        self.playbook: Playbook | None = None

    # ----------------------------------------------------------------- UpContext

    def start(self, spec: ProcessSpec) -> int:
        """Start ``spec`` detached in its AZ's cgroup and record it in ``state.json``."""
        plan = self.plan
        env = {
            "PATH": f"{plan.pg_bin_dir}:{Path(sys.executable).parent}:/usr/local/bin:"
            "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": "/var/lib/postgresql" if spec.as_postgres else os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            **spec.env,
        }
        # Recorded as run, so that control.restart_process starts it the same way.
        cmd = procmod.as_postgres_user(spec.cmd) if spec.as_postgres else list(spec.cmd)
        log = plan.lab / "logs" / f"{spec.name}.log"
        cwd = spec.cwd or plan.lab
        group = plan.cgroup / spec.az if spec.az else plan.cgroup
        child = procmod.spawn(cmd, env=env, log=log, cgroup=group, cwd=cwd)
        entry: dict[str, Any] = {
            "name": spec.name,
            "kind": spec.kind,
            "az": spec.az,
            "pid": child.pid,
            "port": spec.port,
            "log": str(log),
            "cwd": str(cwd),
            "cmd": cmd,
            "env": env,
            **spec.extra,
        }
        self.state.data["processes"].append(entry)
        self.state.save()
        return child.pid

    def started(self, name: str) -> bool:
        return any(entry["name"] == name for entry in self.state.processes)

    def launch(self, job: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` once in the background (provisioning that must not block the loop)."""
        if job not in self.jobs:
            self.jobs[job] = self.pool.submit(fn)

    def job_done(self, job: str) -> bool:
        future = self.jobs.get(job)
        if future is None or not future.done():
            return False
        future.result()  # re-raises the job's error
        return True

    def job_result(self, job: str) -> Any:
        return self.jobs[job].result()

    # ----------------------------------------------------------------- steps

    def prepare(self) -> None:
        plan = self.plan
        plan.lab.mkdir(parents=True, exist_ok=True)
        os.chmod(plan.lab, 0o755)
        for path, owner, mode in assembly.directories(plan):
            path.mkdir(parents=True, exist_ok=True)
            shutil.chown(path, owner, owner)
            os.chmod(path, mode)
        self._check_postgres_access()
        procmod.ensure_cgroups(plan.cgroup, plan.azs)
        self.secrets = load_or_create_secrets(plan.lab, assembly.secret_keys())
        self.state.data = {
            "stack": plan.stack,
            "lab_dir": str(plan.lab),
            "port_base": plan.ports.base,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "ready": False,
            "azs": plan.azs,
            "cgroup": str(plan.cgroup),
            "processes": [],
            "outputs": assembly.outputs(plan),
            "endpoints": assembly.endpoints(plan),
        }
        self.state.save()
        # Drop the files a previous ``up`` rendered: a file that exists is this run's.
        for path in assembly.rendered_files(plan):
            path.unlink(missing_ok=True)

    def _check_postgres_access(self) -> None:
        """Patroni and PostgreSQL run as postgres: it must reach the lab folder and .venv."""
        patroni = self.plan.binaries["patroni"]
        target = self.plan.pg_data(0)
        probe = procmod.run_as_postgres(["test", "-w", str(target), "-a", "-x", patroni])
        if probe.returncode != 0:
            raise PeakreadyError(
                f"the postgres user cannot write {target} or run {patroni}: "
                "a parent folder is not searchable by others (chmod o+x it, or set "
                "PEAKREADY_LAB_DIR to a folder such as /var/tmp/peakready)"
            )

    def run(self) -> None:
        plan, tracker = self.plan, self.tracker
        tracker.set(RENDER_ROW, "wait", "")
        for component in COMPONENTS:
            for name in component.progress_rows():
                tracker.set(name, "wait", "")
        self.prepare()
        self.tracker.set(RENDER_ROW, "wait", "rendering")
        playbook = self.playbook = start_playbook(
            "lab.yml",
            assembly.ansible_vars(plan, self.secrets),
            plan.lab / "ansible",
            inventory=assembly.inventory(plan),
        )
        deadline = time.monotonic() + UP_TIMEOUT_S
        total = sum(len(c.processes(plan)) for c in COMPONENTS)
        rendered = False
        while True:
            self._check_processes()
            for component in COMPONENTS:
                for row in component.step(self):
                    tracker.set(row.name, "ok" if row.ok else "wait", row.detail)
            if not rendered and playbook.done():
                playbook.result()
                rendered = True
                tracker.set(RENDER_ROW, "ok", "rendered")
            elif not rendered:
                count = len(self.state.processes)
                tracker.set(
                    RENDER_ROW, "wait", f"rendering; {count}/{total} servers started already"
                )
            if not tracker.pending():
                break
            if time.monotonic() > deadline:
                raise PeakreadyError(
                    f"lab not ready after {UP_TIMEOUT_S:.0f}s, still waiting for: "
                    f"{', '.join(tracker.pending())} (logs in {plan.lab / 'logs'})"
                )
            time.sleep(0.25)
        self.state.data["outputs"] = assembly.outputs(plan, self.facts.get("db_leader"))
        self.state.data["ready"] = True
        self.state.data["ready_after_s"] = round(time.monotonic() - tracker.t0, 1)
        self.state.save()
        self.pool.shutdown(wait=False)

    def _check_processes(self) -> None:
        for entry in self.state.processes:
            if not procmod.alive(entry["pid"]):
                raise PeakreadyError(
                    f"{entry['name']} exited during start-up: {last_log_line(Path(entry['log']))}"
                    f" (log: {entry['log']})"
                )


def last_log_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:200] if lines else "empty log"


def up(topology: Topology, console: Console) -> int:
    """Start the lab of ``topology``; 0 when ready (or already running)."""
    plan = make_plan(topology)
    existing = running_state(topology.stack)
    if existing is not None:
        console.print(
            f"lab for stack {topology.stack} already running since {existing.data.get('started')} "
            f"({existing.lab_dir}); nothing changed. Endpoint: {existing.outputs.get('endpoint')}"
        )
        return 0
    plan.resolve_binaries(assembly.packages())
    plan.check_ports(assembly.server_ports(plan))
    tracker = Tracker()
    starter = Starter(plan, tracker)
    try:
        with Live(tracker, console=console, refresh_per_second=4, transient=False):
            starter.run()
    except BaseException as exc:
        starter.pool.shutdown(wait=False, cancel_futures=True)
        if starter.playbook is not None:
            starter.playbook.cancel()
        console.print("[red]lab up failed[/]: stopping everything it started …")
        if starter.state.data:
            teardown(starter.state)
            if starter.state.path.exists():
                starter.state.path.replace(plan.lab / "state.last.json")
        if isinstance(exc, KeyboardInterrupt):
            raise PeakreadyError(
                "interrupted: lab up stopped everything it had started", exit_code=130
            ) from None
        if isinstance(exc, PeakreadyError):
            raise
        raise PeakreadyError(f"lab up failed: {type(exc).__name__}: {exc}") from None
    elapsed = time.monotonic() - tracker.t0
    outputs = starter.state.outputs
    console.print(
        f"[green]lab {plan.stack} ready[/] in {elapsed:.1f}s — endpoint {outputs['endpoint']}, "
        f"primary {outputs['db_primary']}, state {starter.state.path}"
    )
    return 0
