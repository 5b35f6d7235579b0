"""The AWS restore drill against moto (and botocore Stubber for AWS Backup). Never live AWS."""

from __future__ import annotations

import json
import time
from typing import Any

import aws_world
import boto3
import pytest
from botocore.stub import Stubber

from peakready.backup import aws as backup_aws
from peakready.backup import aws_verify
from peakready.backup.aws import run_aws_restore_drill
from peakready.backup.aws_verify import AnsibleSsmVerifier, ScratchDb, VerifyFailed
from peakready.backup.ledger import LedgerEntry
from peakready.errors import PeakreadyError
from peakready.targets.aws import shared
from peakready.topology import Objective

aws = aws_world.aws  # fixtures, used by name
world = aws_world.world
calls = aws_world.calls
REGION = aws_world.REGION
PRODUCTS = [{"id": 1, "initial_stock": 100}, {"id": 2, "initial_stock": 100}]


# a ledger, and what a faithful restore of it holds ------------------------------------


def _ledger(before: int = 6, after: int = 2) -> tuple[list[LedgerEntry], float]:
    """``before`` orders acknowledged before the target, ``after`` sent after it."""
    now = time.time()
    target = now - 10
    entries = []
    for n in range(before + after):
        sent = target - 60 + n if n < before else target + 1 + n
        entries.append(
            LedgerEntry(
                key=f"drill-{n}",
                batch="before" if n < before else "after",
                product_id=1 + n % 2,
                quantity=1,
                sent=sent,
                acked=sent + 0.05,
                order_id=100 + n,
                status=201,
            )
        )
    return entries, target


def _facts(entries: list[LedgerEntry], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the playbook reads from a restore holding ``entries`` minus ``drop``."""
    kept = [e for e in entries if e.key not in drop]
    products = []
    for p in PRODUCTS:
        sold = sum(e.quantity for e in kept if e.product_id == p["id"])
        products.append({**p, "stock": p["initial_stock"] - sold, "sold": sold})
    return {
        "orders": {e.key: [e.order_id, e.product_id, e.quantity] for e in kept},
        "orders_total": len(kept),
        "products": products,
    }


class Recorder:
    """A verifier that records where the scratch instance was placed, then answers."""

    def __init__(self, answer: dict[str, Any] | BaseException) -> None:
        self.answer = answer
        self.scratch: ScratchDb | None = None
        self.placed: dict[str, Any] = {}
        self.keys: list[str] = []

    def __call__(self, scratch: ScratchDb, keys: list[str]) -> dict[str, Any]:
        self.scratch, self.keys = scratch, keys
        rds = boto3.client("rds", region_name=REGION)
        self.placed = rds.describe_db_instances(DBInstanceIdentifier=scratch.identifier)[
            "DBInstances"
        ][0]
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _config(world: Any, **extra: Any) -> dict[str, Any]:
    return {**world.configuration, **extra}


def _instances() -> set[str]:
    rds = boto3.client("rds", region_name=REGION)
    return {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}


def _snapshots() -> list[str]:
    """Manual snapshots (the automated ones are RDS's own)."""
    rds = boto3.client("rds", region_name=REGION)
    found = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    return [s["DBSnapshotIdentifier"] for s in found]


# snapshot --------------------------------------------------------------------------


def test_snapshot_drill_restores_into_the_data_subnets_and_verifies(
    world: Any, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    entries, target = _ledger()
    verifier = Recorder(_facts(entries))
    existing = _instances()

    result = run_aws_restore_drill(entries, target, _config(world), verifier=verifier)

    assert result["passed"] is True, result["reasons"]
    assert (result["verified_orders"], result["missing_orders"], result["rpo_s"]) == (6, 0, 0.0)
    assert result["rto_s"] is not None and result["rto_s"] >= result["verify_s"]
    placed = verifier.placed
    assert placed["DBSubnetGroup"]["DBSubnetGroupName"] == world.db_subnet_group
    assert [g["VpcSecurityGroupId"] for g in placed["VpcSecurityGroups"]] == [world.security_group]
    restores = [p for op, p in calls if op == "RestoreDBInstanceFromDBSnapshot"]
    assert [(p["PubliclyAccessible"], p["MultiAZ"]) for p in restores] == [(False, False)]
    snapshot = result["recovery_point"]
    assert (
        next(p for op, p in calls if op == "CreateDBSnapshot")["DBSnapshotIdentifier"] == snapshot
    )
    assert [
        p["DBSnapshotIdentifier"] for op, p in calls if op == "RestoreDBInstanceFromDBSnapshot"
    ] == [snapshot]
    assert [p for op, p in calls if op == "DeleteDBInstance"] == [
        {
            "DBInstanceIdentifier": result["scratch_instance"],
            "SkipFinalSnapshot": True,
            "DeleteAutomatedBackups": True,
        }
    ]
    assert verifier.scratch is not None and verifier.scratch.verify_host in {
        i["InstanceId"] for i in aws_world_instances(world)
    }
    assert sorted(verifier.keys) == sorted(e.key for e in entries)
    assert result["scratch_deleted"] is True
    assert _instances() == existing  # scratch gone
    assert _snapshots() == []  # the drill's own snapshot gone too
    assert any("SSM" in check for check in result["checks_needing_live_account"])


def aws_world_instances(world: Any) -> list[dict[str, Any]]:
    asg = boto3.client("autoscaling", region_name=REGION)
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[world.app_group])
    return list(found["AutoScalingGroups"][0]["Instances"])


def test_scratch_is_deleted_even_when_verification_fails(world: Any) -> None:
    entries, target = _ledger()
    existing = _instances()
    verifier = Recorder(VerifyFailed("verification playbook on i-0: failed (rc 2): boom"))

    result = run_aws_restore_drill(entries, target, _config(world), verifier=verifier)

    assert result["passed"] is False
    assert result["reasons"] == ["verification playbook on i-0: failed (rc 2): boom"]
    assert result["rto_s"] is None
    assert verifier.placed["DBInstanceIdentifier"] == result["scratch_instance"]
    assert result["scratch_deleted"] is True
    assert _instances() == existing
    assert _snapshots() == []


def test_a_missing_acknowledged_order_fails_the_drill_with_its_rpo(world: Any) -> None:
    entries, target = _ledger()
    lost = entries[4]

    result = run_aws_restore_drill(
        entries, target, _config(world), verifier=Recorder(_facts(entries, drop=(lost.key,)))
    )

    assert (result["passed"], result["missing_orders"], result["verified_orders"]) == (False, 1, 5)
    assert result["rpo_s"] == pytest.approx(target - float(lost.acked or 0), abs=0.01)
    assert result["reasons"][0].startswith(
        "1 of 6 acknowledged orders missing at the recovery target (first: drill-4"
    )


def test_stock_that_disagrees_with_the_orders_fails_the_drill(world: Any) -> None:
    entries, target = _ledger()
    facts = _facts(entries)
    facts["products"][1]["stock"] -= 1  # one unit sold without an order

    result = run_aws_restore_drill(entries, target, _config(world), verifier=Recorder(facts))

    assert result["passed"] is False
    assert result["reasons"] == [
        "1 products whose stock disagrees with their orders (first: product 2)"
    ]


def test_a_restore_slower_than_the_policy_is_a_breach(world: Any) -> None:
    entries, target = _ledger()

    result = run_aws_restore_drill(
        entries,
        target,
        _config(world),
        verifier=Recorder(_facts(entries)),
        objective=Objective(rto_s=1e-9, rpo_s=0),
    )

    assert result["passed"] is False
    assert result["reasons"][0].startswith("RTO ")
    assert result["reasons"][0].endswith("breaks the stack's policy of 1e-09 s")


# point in time -------------------------------------------------------------------------


def test_pitr_restores_to_the_target_and_rejects_orders_from_after_it(world: Any) -> None:
    entries, target = _ledger(before=4, after=2)

    result = run_aws_restore_drill(
        entries, target, _config(world), method="pitr", verifier=Recorder(_facts(entries))
    )

    assert result["recovery_point"] is not None
    assert result["unexpected_orders"] == 2
    assert result["reasons"] == ["2 orders placed after the recovery target were restored"]
    assert result["scratch_deleted"] is True
    assert _snapshots() == []


def test_pitr_passes_when_only_orders_up_to_the_target_are_restored(world: Any) -> None:
    entries, target = _ledger(before=4, after=2)
    facts = _facts(entries, drop=tuple(e.key for e in entries if e.batch == "after"))

    result = run_aws_restore_drill(
        entries, target, _config(world), method="pitr", verifier=Recorder(facts)
    )

    assert result["passed"] is True, result["reasons"]
    assert result["restorable_gap_s"] == 0.0
    assert any("LatestRestorableTime" in c for c in result["checks_needing_live_account"])


# AWS Backup (moto has no backup or restore jobs: Stubber) -------------------------------


@pytest.fixture
def backup_stub(world: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client("backup", region_name=REGION)
    stubber = Stubber(client)
    real = shared.aws_client

    def fake(service: str, configuration: Any = None, secrets: Any = None) -> Any:
        return client if service == "backup" else real(service, configuration, secrets)

    monkeypatch.setattr(shared, "aws_client", fake)
    with stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_aws_backup_job_then_restore_job_into_the_data_subnets(
    world: Any, backup_stub: Stubber
) -> None:
    entries, target = _ledger()
    role = "arn:aws:iam::123456789012:role/peakready-backup"
    scratch = "peakready-restore-test1"
    rds = boto3.client("rds", region_name=REGION)
    primary = rds.describe_db_instances(DBInstanceIdentifier=world.db_primary)["DBInstances"][0]
    point = f"arn:aws:rds:{REGION}:123456789012:snapshot:awsbackup:job-1"
    backup_stub.add_response(
        "start_backup_job",
        {"BackupJobId": "job-1"},
        {
            "BackupVaultName": world.backup_vault,
            "ResourceArn": primary["DBInstanceArn"],
            "IamRoleArn": role,
            "IdempotencyToken": scratch,
        },
    )
    backup_stub.add_response(
        "describe_backup_job",
        {"BackupJobId": "job-1", "State": "RUNNING"},
        {"BackupJobId": "job-1"},
    )
    backup_stub.add_response(
        "describe_backup_job",
        {"BackupJobId": "job-1", "State": "COMPLETED", "RecoveryPointArn": point},
        {"BackupJobId": "job-1"},
    )
    backup_stub.add_response(
        "start_restore_job",
        {"RestoreJobId": "restore-1"},
        {
            "RecoveryPointArn": point,
            "Metadata": {
                "DBInstanceIdentifier": scratch,
                "DBSubnetGroupName": world.db_subnet_group,
                "VpcSecurityGroupIds": json.dumps([world.security_group]),
                "MultiAZ": "false",
                "PubliclyAccessible": "false",
                "DBInstanceClass": "db.t4g.medium",
            },
            "IamRoleArn": role,
            "ResourceType": "RDS",
            "IdempotencyToken": scratch,
        },
    )
    # what AWS Backup's restore job creates, made here in moto
    rds.create_db_instance(
        DBInstanceIdentifier=scratch,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="peakready",
        MasterUserPassword="not-a-real-secret-1",
        DBSubnetGroupName=world.db_subnet_group,
    )
    backup_stub.add_response(
        "describe_restore_job",
        {
            "RestoreJobId": "restore-1",
            "Status": "COMPLETED",
            "CreatedResourceArn": f"arn:aws:rds:{REGION}:123456789012:db:{scratch}",
        },
        {"RestoreJobId": "restore-1"},
    )

    result = run_aws_restore_drill(
        entries,
        target,
        _config(world, peakready_backup_role_arn=role),
        method="aws-backup",
        verifier=Recorder(_facts(entries)),
        scratch_id=scratch,
    )

    assert result["passed"] is True, result["reasons"]
    assert result["recovery_point"] == point
    assert scratch not in _instances()
    assert any("StartBackupJob" in c for c in result["checks_needing_live_account"])


def test_a_failed_backup_job_is_reported_and_nothing_is_left_behind(
    world: Any, backup_stub: Stubber
) -> None:
    entries, target = _ledger()
    existing = _instances()
    backup_stub.add_response("start_backup_job", {"BackupJobId": "job-2"}, None)
    backup_stub.add_response(
        "describe_backup_job",
        {
            "BackupJobId": "job-2",
            "State": "FAILED",
            "StatusMessage": "role cannot read the instance",
        },
        {"BackupJobId": "job-2"},
    )

    result = run_aws_restore_drill(
        entries,
        target,
        _config(world, peakready_backup_role_arn="arn:aws:iam::123456789012:role/r"),
        method="aws-backup",
        verifier=Recorder(_facts(entries)),
    )

    assert result["passed"] is False
    assert result["reasons"] == ["backup job job-2: FAILED: role cannot read the instance"]
    assert (result["scratch_deleted"], result["scratch_instance"]) == (False, None)
    assert _instances() == existing


def test_aws_backup_without_a_role_says_what_to_set(world: Any) -> None:
    entries, target = _ledger()

    result = run_aws_restore_drill(
        entries, target, _config(world), method="aws-backup", verifier=Recorder(_facts(entries))
    )

    assert result["reasons"] == [
        "AWS Backup: no IAM role; set 'peakready_backup_role_arn' in the configuration "
        f"or deploy the stack's role peakready-{world.stack}-backup"
    ]


# input and environment errors --------------------------------------------------------------


def test_unknown_method_is_a_user_error() -> None:
    entries, target = _ledger()

    with pytest.raises(
        PeakreadyError, match=r"backup method: got 'tape', expected one of snapshot"
    ):
        run_aws_restore_drill(entries, target, {}, method="tape")


def test_a_ledger_without_acknowledged_orders_is_a_user_error() -> None:
    entries, target = _ledger()

    with pytest.raises(PeakreadyError, match=r"ledger: no order acknowledged before the recovery"):
        run_aws_restore_drill(entries, target - 3600, {})


def test_a_missing_primary_is_reported_without_touching_anything(world: Any) -> None:
    entries, target = _ledger()
    outputs = {**world.outputs, "db_primary": "no-such-db"}

    result = run_aws_restore_drill(
        entries, target, _config(world, peakready_outputs=outputs), verifier=Recorder({})
    )

    assert result["reasons"] == ["database primary no-such-db: no such DB instance"]
    assert (result["scratch_deleted"], _snapshots()) == (False, [])


def test_ssm_verification_needs_a_transfer_bucket() -> None:
    verifier = AnsibleSsmVerifier("pw", region=REGION, bucket=None)
    scratch = ScratchDb("db", "db.example.invalid", 5432, "shop", "shop", "i-0123")

    with pytest.raises(VerifyFailed, match=r"set 'peakready_ssm_bucket'"):
        verifier(scratch, ["k"])


def test_playbook_is_where_the_verifier_looks() -> None:
    assert (AnsibleSsmVerifier("pw").project_dir / aws_verify.PLAYBOOK).is_file()


def _nothing_created(result: dict[str, Any], existing: set[str]) -> None:
    assert (result["scratch_instance"], result["scratch_deleted"]) == (None, False)
    assert _instances() == existing
    assert _snapshots() == []


def test_without_a_database_password_nothing_is_backed_up(world: Any) -> None:
    entries, target = _ledger()
    existing = _instances()

    result = run_aws_restore_drill(entries, target, _config(world))

    assert result["reasons"] == [
        "database password: set the secret 'peakready_db_password' or the configuration key "
        "'peakready_db_password_secret_arn'"
    ]
    _nothing_created(result, existing)


def test_a_managed_master_secret_is_read_and_the_ssm_bucket_checked_first(world: Any) -> None:
    entries, target = _ledger()
    existing = _instances()
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=world.stack + "-master",
        SecretString=json.dumps({"username": "peakready", "password": "not-a-real-secret-1"}),
    )["ARN"]

    result = run_aws_restore_drill(
        entries, target, _config(world, peakready_db_password_secret_arn=secret)
    )

    assert result["reasons"] == [
        "verification over SSM: set 'peakready_ssm_bucket' (the S3 bucket the aws_ssm "
        "connection transfers files through)"
    ]
    _nothing_created(result, existing)


def test_a_multi_az_cluster_primary_is_named_as_unsupported(world: Any) -> None:
    entries, target = _ledger()
    cluster = aws_world.db_cluster(world.stack)
    outputs = {**world.outputs, "db_primary": cluster}

    result = run_aws_restore_drill(
        entries, target, _config(world, peakready_outputs=outputs), verifier=Recorder({})
    )

    assert result["reasons"] == [
        f"database primary {cluster}: a Multi-AZ DB cluster; the restore drill restores DB "
        "instances only (multi-az-instance stacks)"
    ]


def test_ctrl_c_during_verification_still_deletes_the_scratch(world: Any) -> None:
    entries, target = _ledger()
    existing = _instances()

    with pytest.raises(KeyboardInterrupt):
        run_aws_restore_drill(
            entries,
            target,
            _config(world),
            verifier=Recorder(KeyboardInterrupt()),  # type: ignore[arg-type]
        )

    assert _instances() == existing
    assert _snapshots() == []


def test_sweep_deletes_only_this_stacks_leftovers(world: Any) -> None:
    rds = boto3.client("rds", region_name=REGION)

    def leftover(name: str, stack: str, fault: str = "backup-restore") -> None:
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t4g.medium",
            Engine="postgres",
            AllocatedStorage=20,
            MasterUsername="peakready",
            MasterUserPassword="not-a-real-secret-1",
            Tags=[
                {"Key": "peakready:stack", "Value": stack},
                {"Key": "peakready:fault", "Value": fault},
            ],
        )

    leftover("scratch-mine", world.stack)
    leftover("scratch-theirs", "other-" + world.stack)
    leftover("not-scratch", world.stack, fault="something-else")
    rds.create_db_snapshot(
        DBSnapshotIdentifier="snap-mine",
        DBInstanceIdentifier=world.db_primary,
        Tags=[
            {"Key": "peakready:stack", "Value": world.stack},
            {"Key": "peakready:fault", "Value": "backup-restore"},
        ],
    )

    swept = backup_aws.sweep_scratch(_config(world))

    assert swept == {"instances": ["scratch-mine"], "snapshots": ["snap-mine"]}
    assert {"scratch-theirs", "not-scratch", world.db_primary} <= _instances()
    assert "scratch-mine" not in _instances()
    assert backup_aws.sweep_scratch(_config(world)) == {"instances": [], "snapshots": []}


def test_pitr_short_of_the_target_reports_the_gap_as_rpo(world: Any) -> None:
    entries, _ = _ledger(before=4, after=0)
    target = time.time() + 3600  # RDS cannot restore an hour ahead: the gap is the RPO
    for e in entries:
        e.acked = target - 1

    result = run_aws_restore_drill(
        entries,
        target,
        _config(world, peakready_pitr_wait_s=0.05),
        method="pitr",
        verifier=Recorder(_facts(entries)),
        objective=Objective(rto_s=600, rpo_s=300),
    )

    assert result["restorable_gap_s"] == pytest.approx(3600, abs=30)
    assert result["rpo_s"] == result["restorable_gap_s"]
    assert result["reasons"] == [f"RPO {result['rpo_s']:.1f} s breaks the stack's policy of 300 s"]
    assert result["scratch_deleted"] is True
