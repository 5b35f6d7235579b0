"""Verifying an AWS restore from a host that can reach it: an app instance, over SSM,
running ``playbooks/project/verify-restore-aws.yml`` through ansible-runner.

The playbook reads back the ledger's orders and every product's stock; the restore
verdict (``peakready.verdict.restore``) judges them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peakready.topology import REPO_ROOT

PLAYBOOK = "verify-restore-aws.yml"


class VerifyFailed(Exception):
    """The verification could not run or answer (not: it found missing orders)."""


@dataclass(frozen=True)
class ScratchDb:
    """A restored scratch instance and how the verify host reaches it."""

    identifier: str
    address: str
    port: int
    db_name: str
    user: str
    verify_host: str


#: ``verifier(scratch, keys) -> facts``: facts are ``{"orders": {key: [id, product_id,
#: quantity]}, "orders_total": n, "products": [{"id", "stock", "initial_stock", "sold"}]}``.
Verifier = Callable[[ScratchDb, list[str]], dict[str, Any]]


class AnsibleSsmVerifier:
    """Runs ``playbooks/project/verify-restore-aws.yml`` on the verify host.

    ``connection`` defaults to ``community.aws.aws_ssm`` (needs that collection, an S3
    bucket for file transfer and the SSM agent on the host); tests use ``local``.
    """

    def __init__(
        self,
        password: str,
        *,
        region: str | None = None,
        bucket: str | None = None,
        connection: str = "community.aws.aws_ssm",
        install_client: bool = True,
        sslmode: str = "require",
        psql: str = "psql",
        timeout_s: int = 600,
        project_dir: Path = REPO_ROOT / "playbooks" / "project",
        host_vars: dict[str, Any] | None = None,
    ) -> None:
        self.password = password
        self.region = region
        self.bucket = bucket
        self.connection = connection
        self.install_client = install_client
        self.sslmode = sslmode
        self.psql = psql
        self.timeout_s = timeout_s
        self.project_dir = project_dir
        self.host_vars = dict(host_vars or {})

    def __call__(self, scratch: ScratchDb, keys: list[str]) -> dict[str, Any]:
        import ansible_runner  # imported here: slow, and only this path needs it

        host_vars: dict[str, Any] = {"ansible_connection": self.connection, **self.host_vars}
        if self.connection.endswith("aws_ssm"):
            if not self.bucket:
                raise VerifyFailed(
                    "verification over SSM: set 'peakready_ssm_bucket' (the S3 bucket the "
                    "aws_ssm connection transfers files through)"
                )
            host_vars |= {
                "ansible_aws_ssm_region": self.region,
                "ansible_aws_ssm_bucket_name": self.bucket,
            }
        extravars = {
            "verify_restore_db_host": scratch.address,
            "verify_restore_db_port": scratch.port,
            "verify_restore_db_name": scratch.db_name,
            "verify_restore_db_user": scratch.user,
            "verify_restore_db_password": self.password,
            "verify_restore_db_sslmode": self.sslmode,
            "verify_restore_keys": keys,
            "verify_restore_install_client": self.install_client,
            "verify_restore_psql": self.psql,
        }
        with tempfile.TemporaryDirectory(prefix="peakready-verify-") as private:
            run = ansible_runner.run(
                private_data_dir=private,
                envvars={
                    "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/bin')}",
                    "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_RETRY_FILES_ENABLED": "0",
                },
                project_dir=str(self.project_dir),
                playbook=PLAYBOOK,
                inventory={"verify_restore": {"hosts": {scratch.verify_host: host_vars}}},
                extravars=extravars,
                quiet=True,
                timeout=self.timeout_s,
            )
            events = list(run.events)
            if run.status != "successful" or run.rc != 0:
                raise VerifyFailed(
                    f"verification playbook on {scratch.verify_host}: {run.status} "
                    f"(rc {run.rc}): {_failure_text(events, run.stdout.read())}"
                )
        facts = _stats(events).get("verify_restore")
        if not isinstance(facts, dict):
            raise VerifyFailed(
                f"verification playbook on {scratch.verify_host}: no verify_restore result"
            )
        return facts


# private


def _stats(events: list[dict[str, Any]]) -> dict[str, Any]:
    for event in reversed(events):
        if event.get("event") == "playbook_on_stats":
            data = event.get("event_data", {}).get("artifact_data") or {}
            return dict(data)
    return {}


def _failure_text(events: list[dict[str, Any]], stdout: str = "") -> str:
    for event in reversed(events):
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            data = event.get("event_data", {})
            res = data.get("res", {})
            detail = res.get("stderr") or res.get("msg") or "no message"
            return f"task '{data.get('task', '?')}': {str(detail).strip()[:300]}"
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no failed task reported"
