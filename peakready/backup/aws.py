"""The AWS restore drill: back up, restore into a scratch instance, verify, always delete.

1. Back up the stack's primary (``db_primary`` output) with one of three methods:
   ``snapshot`` (an on-demand RDS snapshot, the default), ``aws-backup`` (an on-demand
   AWS Backup job into the ``backup_vault`` output), or ``pitr`` (no new backup: RDS
   point-in-time restore to the recovery target itself).
2. Restore into a scratch DB instance in the data subnets: the primary's own DB subnet
   group and security groups, single-AZ, never public.
3. Verify it from a host that can reach it — an app instance, over SSM, running
   ``playbooks/project/verify-restore-aws.yml`` through ansible-runner — which reads
   back the ledger's orders and every product's stock; Python judges them the way the
   lab drill does (every order acknowledged before the target present and unchanged,
   stock consistent with the orders).
4. Delete the scratch instance (and the drill's own snapshot) in a ``finally``.

RTO runs from the restore request to the verified scratch database; RPO is the
acknowledged-order loss in seconds of the ledger (target - first missing
acknowledgement), and for ``pitr`` at least the gap between the target and RDS's
LatestRestorableTime. The result is the ``backup`` section of DESIGN §7 plus the
details, and ``checks_needing_live_account``: what a run against moto cannot prove.

Configuration keys (besides those of :mod:`peakready.targets.aws.shared`):
``peakready_backup_role_arn`` (else the role ``peakready-<stack>-backup``; ``aws-backup`` only),
``peakready_verify_host`` (an instance id; default: a healthy app instance),
``peakready_ssm_bucket`` (S3 bucket of the SSM connection),
``peakready_db_user`` / ``peakready_db_name`` (default ``shop``).
Secrets: ``peakready_db_password``, or configuration ``peakready_db_password_secret_arn``
(an AWS Secrets Manager secret holding the password, or JSON with a ``password`` key).

Over 500 lines: one drill's lifecycle is one object (``_Drill``), whose steps share what
must be deleted in the ``finally``; the verification is ``peakready.backup.aws_verify``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

import peakready.targets.aws.shared as shared
from peakready.backup.aws_verify import AnsibleSsmVerifier, ScratchDb, Verifier, VerifyFailed
from peakready.backup.ledger import LedgerEntry
from peakready.errors import PeakreadyError
from peakready.topology import Objective
from peakready.verdict.restore import judge_restore, policy_reasons

METHODS = ("snapshot", "aws-backup", "pitr")
FAILED_DB_STATES = ("failed", "incompatible-restore", "incompatible-parameters", "storage-full")
FAILED_JOB_STATES = ("FAILED", "ABORTED", "EXPIRED")
SCRATCH_TAG_VALUE = "backup-restore"

LIVE_CHECKS_COMMON = (
    "verification over SSM: the community.aws.aws_ssm connection, its S3 transfer bucket, "
    "the SSM agent and instance role of the verify host",
    "network path from the verify host to the scratch instance (security group rules, "
    "DB subnet group routing, TLS)",
    "real restore duration: moto restores at once, so rto_s here measures no real restore",
    "the restored rows themselves: moto restores no data; verified orders come from the "
    "playbook's answer",
    "deletion of the scratch instance completing (moto deletes at once)",
)
LIVE_CHECKS = {
    "snapshot": ("real snapshot duration and its point in time",),
    "aws-backup": (
        "AWS Backup jobs: moto has no StartBackupJob/StartRestoreJob (tested with Stubber), "
        "nor the backup role's permissions",
    ),
    "pitr": ("LatestRestorableTime lag and a restore to the exact recovery target",),
}


@dataclass
class AwsRestoreResult:
    method: str
    target: str
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    rto_s: float | None = None
    rpo_s: float | None = None
    verified_orders: int = 0
    missing_orders: int = 0
    unexpected_orders: int = 0
    inconsistent_products: int = 0
    recovery_point: str | None = None
    latest_restorable_time: str | None = None
    restorable_gap_s: float | None = None
    scratch_instance: str | None = None
    scratch_subnet_group: str | None = None
    scratch_deleted: bool = False
    verify_host: str | None = None
    backup_s: float | None = None
    restore_s: float | None = None
    verify_s: float | None = None
    checks_needing_live_account: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The ``backup`` section of summary.json (DESIGN §7) and the details."""
        return {
            "rto_s": self.rto_s,
            "rpo_s": self.rpo_s,
            "verified_orders": self.verified_orders,
            "missing_orders": self.missing_orders,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "target": self.target,
            "method": self.method,
            "unexpected_orders": self.unexpected_orders,
            "inconsistent_products": self.inconsistent_products,
            "recovery_point": self.recovery_point,
            "latest_restorable_time": self.latest_restorable_time,
            "restorable_gap_s": self.restorable_gap_s,
            "scratch_instance": self.scratch_instance,
            "scratch_subnet_group": self.scratch_subnet_group,
            "scratch_deleted": self.scratch_deleted,
            "verify_host": self.verify_host,
            "backup_s": self.backup_s,
            "restore_s": self.restore_s,
            "verify_s": self.verify_s,
            "checks_needing_live_account": list(self.checks_needing_live_account),
        }


def run_aws_restore_drill(
    entries: Sequence[LedgerEntry],
    target_ts: float,
    configuration: Configuration = None,
    secrets: Secrets = None,
    *,
    method: str = "snapshot",
    objective: Objective | None = None,
    verifier: Verifier | None = None,
    scratch_id: str | None = None,
) -> dict[str, Any]:
    """Run the drill (module docstring) for the orders of ``entries`` around the recovery
    target ``target_ts`` (epoch seconds); return the ``backup`` summary. Never raises
    for a failed backup, restore or verification: those are reasons in the result."""
    if method not in METHODS:
        raise PeakreadyError(f"backup method: got {method!r}, expected one of {', '.join(METHODS)}")
    if not any(e.acknowledged and float(e.acked or 0) <= target_ts for e in entries):
        raise PeakreadyError("ledger: no order acknowledged before the recovery target")
    cfg = dict(configuration or {})
    out = AwsRestoreResult(
        method=method,
        target=datetime.fromtimestamp(target_ts, UTC).isoformat(),
        checks_needing_live_account=[*LIVE_CHECKS_COMMON, *LIVE_CHECKS[method]],
    )
    drill = _Drill(cfg, secrets, out, scratch_id or _scratch_name())
    try:
        drill.run(entries, target_ts, verifier)
    except (ActivityFailed, VerifyFailed) as exc:
        out.reasons.append(str(exc))
    except (ClientError, BotoCoreError) as exc:
        out.reasons.append(f"AWS: {shared.error_text(exc)}")
    finally:
        drill.clean_up()
    _policy(out, objective)
    out.passed = not out.reasons
    return out.summary()


def sweep_scratch(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, list[str]]:
    """Delete what an interrupted drill of this stack may have left: DB instances and
    manual snapshots tagged ``peakready:fault=backup-restore`` for the stack. Returns
    ``{"instances": [...], "snapshots": [...]}`` deleted. Run it when no drill runs."""
    stack = str(shared.load_outputs(configuration).get("stack") or "")
    if not stack:
        raise PeakreadyError("stack outputs: no 'stack' to find the drill's scratch resources by")
    rds = shared.client("rds", configuration, secrets)
    wanted = {shared.TAG_STACK: stack, shared.TAG_FAULT: SCRATCH_TAG_VALUE}
    swept: dict[str, list[str]] = {"instances": [], "snapshots": []}
    try:
        _sweep(rds, wanted, swept)
    except (ClientError, BotoCoreError) as exc:
        raise PeakreadyError(
            f"sweeping the restore drill's scratch resources of {stack}: "
            f"{shared.error_text(exc)} (deleted so far: {swept})"
        ) from None
    return swept


def _sweep(rds: Any, wanted: dict[str, str], swept: dict[str, list[str]]) -> None:
    for db in _paged(rds, "describe_db_instances", "DBInstances"):
        if _has_tags(db.get("TagList", []), wanted) and db["DBInstanceStatus"] != "deleting":
            rds.delete_db_instance(
                DBInstanceIdentifier=db["DBInstanceIdentifier"],
                SkipFinalSnapshot=True,
                DeleteAutomatedBackups=True,
            )
            swept["instances"].append(db["DBInstanceIdentifier"])
    for snap in _paged(rds, "describe_db_snapshots", "DBSnapshots", SnapshotType="manual"):
        if _has_tags(snap.get("TagList", []), wanted):
            rds.delete_db_snapshot(DBSnapshotIdentifier=snap["DBSnapshotIdentifier"])
            swept["snapshots"].append(snap["DBSnapshotIdentifier"])


def judge(
    entries: Sequence[LedgerEntry],
    target_ts: float,
    facts: dict[str, Any],
    out: AwsRestoreResult,
    *,
    exact_target: bool,
) -> None:
    """Compare the restored facts with the ledger: the restore verdict the lab drill
    applies too (:func:`peakready.verdict.restore.judge_restore`).

    ``exact_target``: the restore stopped at the target, so orders sent after it must
    be absent (``pitr``); a snapshot taken after the target may hold them.
    """
    found = {
        str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in (facts.get("orders") or {}).items()
    }
    verdict = judge_restore(
        entries,
        found,
        facts.get("products") or [],
        target_ts,
        exact_target=exact_target,
        # A point-in-time restore that fell short of the target lost that gap too.
        rpo_floor_s=(out.restorable_gap_s or 0.0) if exact_target else 0.0,
    )
    out.verified_orders = verdict.verified_orders
    out.missing_orders = verdict.missing_orders
    out.unexpected_orders = verdict.unexpected_orders
    out.inconsistent_products = verdict.inconsistent_products
    out.rpo_s = verdict.rpo_s
    out.reasons.extend(verdict.reasons)


class _Drill:
    """One run: the steps, and what ``clean_up`` must delete whatever happened."""

    def __init__(
        self, cfg: dict[str, Any], secrets: Secrets, out: AwsRestoreResult, scratch_id: str
    ) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.out = out
        self.scratch_id = scratch_id
        self.snapshot_id: str | None = None
        self.restore_requested = False
        self.db_user = str(cfg.get("peakready_db_user", "shop"))
        self.stack = str(cfg.get("peakready_stack", ""))

    def client(self, service: str) -> Any:
        return shared.client(service, self.cfg, self.secrets)

    def run(
        self, entries: Sequence[LedgerEntry], target_ts: float, verifier: Verifier | None
    ) -> None:
        outputs = shared.load_outputs(self.cfg)
        self.stack = str(outputs.get("stack") or self.stack)
        primary_id = str(outputs.require("db_primary"))
        primary = self._describe(primary_id)
        if primary is None:
            raise ActivityFailed(
                f"database primary {primary_id}: {self._not_an_instance(primary_id)}"
            )
        latest = primary.get("LatestRestorableTime")
        if isinstance(latest, datetime):
            self.out.latest_restorable_time = latest.isoformat()
            self.out.restorable_gap_s = round(max(0.0, target_ts - latest.timestamp()), 3)
        if not primary.get("DBSubnetGroup"):
            raise ActivityFailed(
                f"database primary {primary_id}: no DB subnet group to place the scratch "
                "instance in the data subnets"
            )
        self.out.scratch_subnet_group = primary["DBSubnetGroup"]["DBSubnetGroupName"]
        verify = verifier or self._default_verifier()
        started = time.monotonic()
        point = self._back_up(primary, outputs, target_ts)
        self.out.backup_s = round(time.monotonic() - started, 3)
        restore_started = time.monotonic()
        scratch = self._restore(primary, point, target_ts)
        self.out.restore_s = round(time.monotonic() - restore_started, 3)
        verify_started = time.monotonic()
        facts = verify(scratch, sorted({e.key for e in entries}))
        self.out.verify_s = round(time.monotonic() - verify_started, 3)
        self.out.rto_s = round(time.monotonic() - restore_started, 3)
        judge(entries, target_ts, facts, self.out, exact_target=self.out.method == "pitr")

    def clean_up(self) -> None:
        """Delete the scratch instance and the drill's snapshot; a failure is a reason."""
        rds = self.client("rds")
        if self.restore_requested:
            try:
                rds.delete_db_instance(
                    DBInstanceIdentifier=self.scratch_id,
                    SkipFinalSnapshot=True,
                    DeleteAutomatedBackups=True,
                )
                self.out.scratch_deleted = True
            except ClientError as exc:
                if _code(exc) == "DBInstanceNotFound":
                    self.out.scratch_deleted = True
                else:
                    self.out.reasons.append(
                        f"scratch instance {self.scratch_id} NOT deleted: {shared.error_text(exc)}"
                    )
        if self.snapshot_id:
            try:
                rds.delete_db_snapshot(DBSnapshotIdentifier=self.snapshot_id)
            except ClientError as exc:
                if _code(exc) != "DBSnapshotNotFound":
                    self.out.reasons.append(
                        f"drill snapshot {self.snapshot_id} NOT deleted: {shared.error_text(exc)}"
                    )

    # steps -------------------------------------------------------------------
    def _back_up(
        self, primary: dict[str, Any], outputs: shared.StackOutputs, target_ts: float
    ) -> str:
        """Take the backup; returns what to restore from (snapshot id, recovery point ARN,
        or the ISO time for pitr)."""
        method = self.out.method
        if method == "pitr":
            latest = self._wait_restorable(primary["DBInstanceIdentifier"], target_ts)
            restore_ts = min(target_ts, latest.timestamp()) if latest else target_ts
            if latest:
                self.out.latest_restorable_time = latest.isoformat()
                self.out.restorable_gap_s = round(max(0.0, target_ts - latest.timestamp()), 3)
            self.out.recovery_point = datetime.fromtimestamp(restore_ts, UTC).isoformat()
            return self.out.recovery_point
        if method == "snapshot":
            return self._snapshot(primary["DBInstanceIdentifier"])
        return self._backup_job(primary, outputs)

    def _wait_restorable(self, primary_id: str, target_ts: float) -> datetime | None:
        """RDS's LatestRestorableTime once it has passed the target (it trails the
        primary by up to ~5 minutes), or the last one seen after ``peakready_pitr_wait_s``
        (default 600): restoring then falls short of the target, and the gap is RPO."""
        seen: list[datetime] = []

        def passed() -> datetime | None:
            found = self._describe(primary_id)
            latest = (found or {}).get("LatestRestorableTime")
            if not isinstance(latest, datetime):
                return None
            seen.append(latest)
            return latest if latest.timestamp() >= target_ts else None

        limit = float(self.cfg.get("peakready_pitr_wait_s", 600))
        try:
            return shared.wait_for(passed, "restorable time past the target", self.cfg, limit)
        except ActivityFailed:
            return seen[-1] if seen else None

    def _snapshot(self, primary_id: str) -> str:
        rds = self.client("rds")
        snapshot_id = f"{self.scratch_id}-snap"
        rds.create_db_snapshot(
            DBSnapshotIdentifier=snapshot_id, DBInstanceIdentifier=primary_id, Tags=self._tags()
        )
        self.snapshot_id = snapshot_id
        shared.wait_for(
            lambda: _snapshot_ready(rds, snapshot_id), f"snapshot {snapshot_id} available", self.cfg
        )
        self.out.recovery_point = snapshot_id
        return snapshot_id

    def _backup_job(self, primary: dict[str, Any], outputs: shared.StackOutputs) -> str:
        role = self._backup_role(outputs)
        backup = self.client("backup")
        job = backup.start_backup_job(
            BackupVaultName=str(outputs.require("backup_vault")),
            ResourceArn=primary["DBInstanceArn"],
            IamRoleArn=role,
            IdempotencyToken=self.scratch_id,
        )["BackupJobId"]
        done = shared.wait_for(
            lambda: _job_done(backup.describe_backup_job(BackupJobId=job), f"backup job {job}"),
            f"backup job {job} completed",
            self.cfg,
        )
        self.out.recovery_point = str(done["RecoveryPointArn"])
        return self.out.recovery_point

    def _restore(self, primary: dict[str, Any], point: str, target_ts: float) -> ScratchDb:
        rds = self.client("rds")
        placement = {
            "DBSubnetGroupName": primary["DBSubnetGroup"]["DBSubnetGroupName"],
            "VpcSecurityGroupIds": [g["VpcSecurityGroupId"] for g in primary["VpcSecurityGroups"]],
            "MultiAZ": False,
            "PubliclyAccessible": False,
            "DBInstanceClass": primary["DBInstanceClass"],
        }
        self.restore_requested = True
        if self.out.method == "snapshot":
            rds.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=self.scratch_id,
                DBSnapshotIdentifier=point,
                Tags=self._tags(),
                **placement,
            )
        elif self.out.method == "pitr":
            rds.restore_db_instance_to_point_in_time(
                SourceDBInstanceIdentifier=primary["DBInstanceIdentifier"],
                TargetDBInstanceIdentifier=self.scratch_id,
                RestoreTime=datetime.fromisoformat(point),
                Tags=self._tags(),
                **placement,
            )
        else:
            self._restore_job(point, placement)
        ready = shared.wait_for(
            lambda: self._scratch_ready(rds),
            f"scratch instance {self.scratch_id} available",
            self.cfg,
        )
        self.out.scratch_instance = self.scratch_id
        endpoint = ready.get("Endpoint") or {}
        return ScratchDb(
            identifier=self.scratch_id,
            address=str(endpoint.get("Address", "")),
            port=int(endpoint.get("Port", 5432)),
            db_name=str(self.cfg.get("peakready_db_name", "shop")),
            user=self.db_user,
            verify_host=self._verify_host(),
        )

    def _restore_job(self, point: str, placement: dict[str, Any]) -> None:
        backup = self.client("backup")
        metadata = {
            "DBInstanceIdentifier": self.scratch_id,
            "DBSubnetGroupName": placement["DBSubnetGroupName"],
            "VpcSecurityGroupIds": json.dumps(placement["VpcSecurityGroupIds"]),
            "MultiAZ": "false",
            "PubliclyAccessible": "false",
            "DBInstanceClass": placement["DBInstanceClass"],
        }
        job = backup.start_restore_job(
            RecoveryPointArn=point,
            Metadata=metadata,
            IamRoleArn=self._backup_role(shared.load_outputs(self.cfg)),
            ResourceType="RDS",
            IdempotencyToken=self.scratch_id,
        )["RestoreJobId"]
        shared.wait_for(
            lambda: _job_done(backup.describe_restore_job(RestoreJobId=job), f"restore job {job}"),
            f"restore job {job} completed",
            self.cfg,
        )

    def _scratch_ready(self, rds: Any) -> dict[str, Any] | None:
        found = self._describe(self.scratch_id, rds)
        if found is None:
            return None
        status = found.get("DBInstanceStatus")
        if status in FAILED_DB_STATES:
            raise ActivityFailed(f"restore into {self.scratch_id}: instance status {status}")
        return found if status == "available" else None

    def _describe(self, identifier: str, rds: Any = None) -> dict[str, Any] | None:
        try:
            found = (rds or self.client("rds")).describe_db_instances(
                DBInstanceIdentifier=identifier
            )
        except ClientError as exc:
            if _code(exc) == "DBInstanceNotFound":
                return None
            raise
        return dict(found["DBInstances"][0])

    def _not_an_instance(self, identifier: str) -> str:
        try:
            self.client("rds").describe_db_clusters(DBClusterIdentifier=identifier)
        except ClientError as exc:
            if _code(exc) == "DBClusterNotFoundFault":
                return "no such DB instance"
            raise
        return (
            "a Multi-AZ DB cluster; the restore drill restores DB instances only "
            "(multi-az-instance stacks)"
        )

    def _verify_host(self) -> str:
        configured = self.cfg.get("peakready_verify_host")
        if configured:
            self.out.verify_host = str(configured)
            return self.out.verify_host
        from peakready.targets.aws.driver import AwsDriver  # the driver reads the app group

        healthy = [
            i["id"] for i in AwsDriver(self.cfg, self.secrets).app_instances() if i["healthy"]
        ]
        if not healthy:
            raise ActivityFailed("verify host: the app group has no healthy instance to run on")
        self.out.verify_host = healthy[0]
        return healthy[0]

    def _default_verifier(self) -> Verifier:
        password = self._credentials()
        bucket = self.cfg.get("peakready_ssm_bucket")
        if not bucket:
            raise VerifyFailed(
                "verification over SSM: set 'peakready_ssm_bucket' (the S3 bucket the "
                "aws_ssm connection transfers files through)"
            )
        return AnsibleSsmVerifier(password, region=self.cfg.get("aws_region"), bucket=bucket)

    def _credentials(self) -> str:
        """The database password (and, from a JSON secret, its user): checked before any
        backup is taken, so a drill that could not verify creates nothing."""
        direct = (self.secrets or {}).get("peakready_db_password")
        if direct:
            return str(direct)
        arn = self.cfg.get("peakready_db_password_secret_arn")
        if not arn:
            raise VerifyFailed(
                "database password: set the secret 'peakready_db_password' or the configuration "
                "key 'peakready_db_password_secret_arn'"
            )
        value = str(self.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        if not isinstance(parsed, dict) or "password" not in parsed:
            return value
        if "username" in parsed and "peakready_db_user" not in self.cfg:
            self.db_user = str(parsed["username"])  # an RDS-managed master secret
        return str(parsed["password"])

    def _backup_role(self, outputs: shared.StackOutputs) -> str:
        role_name = f"peakready-{outputs.get('stack') or self.stack}-backup"
        role = self.cfg.get("peakready_backup_role_arn") or shared.stack_role_arn(
            role_name, self.cfg, self.secrets
        )
        if not role:
            raise ActivityFailed(
                "AWS Backup: no IAM role; set 'peakready_backup_role_arn' in the configuration "
                f"or deploy the stack's role {role_name}"
            )
        return str(role)

    def _tags(self) -> list[dict[str, str]]:
        return _scratch_tags(self.stack)


def _scratch_tags(stack: str) -> list[dict[str, str]]:
    return [
        {"Key": shared.TAG_STACK, "Value": stack},
        {"Key": shared.TAG_FAULT, "Value": SCRATCH_TAG_VALUE},
    ]


def _has_tags(tag_list: list[dict[str, str]], wanted: dict[str, str]) -> bool:
    tags = {t.get("Key"): t.get("Value") for t in tag_list}
    return all(tags.get(k) == v for k, v in wanted.items())


def _paged(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        found.extend(page.get(key, []))
    return found


def _scratch_name() -> str:
    return f"peakready-restore-{uuid.uuid4().hex[:12]}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _snapshot_ready(rds: Any, snapshot_id: str) -> dict[str, Any] | None:
    snap = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot_id)["DBSnapshots"][0]
    if snap.get("Status") in ("failed", "error"):
        raise ActivityFailed(f"snapshot {snapshot_id}: status {snap['Status']}")
    return dict(snap) if snap.get("Status") == "available" else None


def _job_done(job: dict[str, Any], what: str) -> dict[str, Any] | None:
    state = str(job.get("State") or job.get("Status") or "")
    if state in FAILED_JOB_STATES:
        raise ActivityFailed(f"{what}: {state}: {job.get('StatusMessage', 'no message')}")
    return job if state == "COMPLETED" else None


def _policy(out: AwsRestoreResult, objective: Objective | None) -> None:
    if objective is not None:
        out.reasons.extend(policy_reasons(out.rto_s, out.rpo_s, objective))
