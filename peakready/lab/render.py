"""Render the lab's configuration with the Ansible roles under ``playbooks/`` (ansible-runner).

ansible-runner runs a private data dir inside the lab folder whose ``project``,
``roles`` and ``inventory`` link to ``playbooks/``. Variables (secrets included) go in
through its ``env/extravars`` file, mode 0600, so they never reach a command line or
the repository; the artifacts stay in the lab folder too.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from peakready.errors import PeakreadyError
from peakready.lab.state import write_json_atomic
from peakready.topology import REPO_ROOT

PLAYBOOKS = REPO_ROOT / "playbooks"


class Playbook:
    """A playbook run in progress (ansible-runner in a thread of this process)."""

    def __init__(self, name: str, thread: Any, runner: Any, stop: threading.Event) -> None:
        self.name = name
        self.thread = thread
        self.runner = runner
        self.stop = stop

    def done(self) -> bool:
        return not self.thread.is_alive()

    def cancel(self, wait: float = 10.0) -> None:
        self.stop.set()
        self.thread.join(wait)

    def result(self) -> None:
        """Wait for the end; a failure becomes one error line, a Ctrl-C an interrupt."""
        self.thread.join()
        status, rc = self.runner.status, self.runner.rc
        if status == "canceled":
            raise KeyboardInterrupt  # ansible-runner took the Ctrl-C meant for us
        if status != "successful" or rc != 0:
            raise PeakreadyError(
                f"ansible playbook {self.name} {status} (rc {rc}): " + _first_failure(self.runner)
            )


def start_playbook(
    playbook: str,
    variables: dict[str, Any],
    work_dir: Path,
    inventory: dict[str, Any] | None = None,
) -> Playbook:
    """Start ``playbooks/project/<playbook>`` in the background; see :class:`Playbook`."""
    # Imported here: ansible-runner takes ~1 s to import; only up renders.
    import ansible_runner

    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(work_dir, 0o700)
    # A private data dir of our own in the lab folder: ansible-runner writes env/ files
    # (extravars, envvars) into it, which must never land in the repository.
    private = work_dir / "runner"
    (private / "env").mkdir(parents=True, exist_ok=True)
    for part in ("project", "roles"):
        link = private / part
        if not link.is_symlink():
            link.symlink_to(PLAYBOOKS / part)
    shutil.copyfile(PLAYBOOKS / "env" / "settings", private / "env" / "settings")
    write_json_atomic(private / "env" / "extravars", variables, mode=0o600)
    inventory_file = private / "inventory.json"
    if inventory is not None:
        write_json_atomic(inventory_file, inventory, mode=0o600)
    else:
        inventory_file = PLAYBOOKS / "inventory" / "hosts.yml"
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}:/usr/sbin:/sbin",
        "ANSIBLE_LOCAL_TEMP": str(work_dir / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(work_dir / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
    }
    stop = threading.Event()
    thread, runner = ansible_runner.run_async(
        private_data_dir=str(private),
        playbook=playbook,
        inventory=str(inventory_file),
        forks=8,
        artifact_dir=str(work_dir / "artifacts"),
        rotate_artifacts=2,
        envvars=env,
        quiet=True,
        settings={"suppress_ansible_output": True},
        cancel_callback=stop.is_set,
    )
    return Playbook(playbook, thread, runner, stop)


def run_playbook(
    playbook: str,
    variables: dict[str, Any],
    work_dir: Path,
    inventory: dict[str, Any] | None = None,
) -> None:
    """Run a playbook to its end; a failure becomes one error line."""
    start_playbook(playbook, variables, work_dir, inventory).result()


def _first_failure(result: Any) -> str:
    for event in result.events:
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            data = event.get("event_data", {})
            res = data.get("res", {})
            message = res.get("msg") or res.get("stderr") or "failed"
            if res.get("censored"):
                message = "failed (output hidden: the task handles secrets)"
            task = data.get("task", "?")
            return f"task '{task}': {str(message).splitlines()[0][:300]}"
    stdout = Path(result.config.artifact_dir) / "stdout"
    try:
        for line in stdout.read_text(errors="replace").splitlines():
            if line.startswith("[ERROR]"):
                return line[:300]
    except OSError:
        pass
    return f"see {stdout}"
