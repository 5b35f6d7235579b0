"""Backup tier: an AWS Backup vault, a plan and a tag-based selection, copied to a second region."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws.backup as backup
import pulumi_aws.iam as iam

from infra.trust import service_trust_policy

#: Resources tagged with this key and value are backed up by the plan.
SELECTION_TAG = ("peakready:backup", "true")


@dataclass
class BackupArgs:
    vault_name: str
    role_name: str
    full_schedule: str
    incremental_schedule: str
    retention_days: int
    copy_region: str | None = None
    protected: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class Backup(pulumi.ComponentResource):
    """Daily and weekly rules; every recovery point is also copied to ``copy_region`` (3-2-1)."""

    vault_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:backup:Backup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        vault = backup.Vault(
            f"{name}-vault",
            name=args.vault_name,
            force_destroy=not args.protected,
            tags=tags,
            opts=child,
        )
        copy_actions: list[backup.PlanRuleCopyActionArgs] = []
        if args.copy_region:
            copy_vault = backup.Vault(
                f"{name}-copy-vault",
                name=f"{args.vault_name}-copy",
                region=args.copy_region,
                force_destroy=not args.protected,
                tags=tags,
                opts=child,
            )
            copy_actions.append(
                backup.PlanRuleCopyActionArgs(
                    destination_vault_arn=copy_vault.arn,
                    lifecycle=backup.PlanRuleCopyActionLifecycleArgs(
                        delete_after=args.retention_days
                    ),
                )
            )

        def rule(rule_name: str, schedule: str) -> backup.PlanRuleArgs:
            return backup.PlanRuleArgs(
                rule_name=rule_name,
                target_vault_name=vault.name,
                schedule=schedule,
                start_window=60,
                completion_window=360,
                lifecycle=backup.PlanRuleLifecycleArgs(delete_after=args.retention_days),
                copy_actions=copy_actions or None,
                recovery_point_tags=tags,
            )

        plan = backup.Plan(
            f"{name}-plan",
            name=f"{args.vault_name}-plan",
            rules=[
                rule("weekly-full", args.full_schedule),
                rule("daily", args.incremental_schedule),
            ],
            tags=tags,
            opts=child,
        )
        role = iam.Role(
            f"{name}-role",
            name=args.role_name,
            assume_role_policy=service_trust_policy("backup.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        for suffix, policy in (
            ("backup", "AWSBackupServiceRolePolicyForBackup"),
            ("restore", "AWSBackupServiceRolePolicyForRestores"),
        ):
            iam.RolePolicyAttachment(
                f"{name}-{suffix}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/service-role/{policy}",
                opts=child,
            )
        backup.Selection(
            f"{name}-selection",
            name=f"{args.vault_name}-tagged",
            plan_id=plan.id,
            iam_role_arn=role.arn,
            selection_tags=[
                backup.SelectionSelectionTagArgs(
                    type="STRINGEQUALS", key=SELECTION_TAG[0], value=SELECTION_TAG[1]
                )
            ],
            opts=child,
        )

        self.vault_name = vault.name
        self.register_outputs({"vault_name": self.vault_name})
