"""Evaluate the policy pack on an offline plan, without the Pulumi engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from peakready.policy.rules import POLICIES


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    resource: str | None
    message: str

    @property
    def mandatory(self) -> bool:
        return self.level == EnforcementLevel.MANDATORY.value


def _urn(stack: str, resource: dict[str, Any]) -> str:
    return f"urn:pulumi:{stack}::peakready::{resource['type']}::{resource['name']}"


def _options(resource: dict[str, Any], parent_urn: str | None) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=bool(resource.get("protect")),
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=parent_urn,
    )


def _collector(
    violations: list[Violation], policy: str, level: str, key: str | None
) -> Callable[..., None]:
    def report(message: str, urn: str | None = None) -> None:
        violations.append(Violation(policy, level, key, message))

    return report


def evaluate(plan: dict[str, Any], policies: list[Any] | None = None) -> list[Violation]:
    """Every violation of ``policies`` (default: the pack) by the plan's resources."""
    policies = POLICIES if policies is None else policies
    stack = plan.get("stack", "stack")
    resources = plan.get("resources", [])
    urns = {r["key"]: _urn(stack, r) for r in resources}
    violations: list[Violation] = []
    for policy in policies:
        level = (policy.enforcement_level or EnforcementLevel.ADVISORY).value
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(
                    resource_type=resource["type"],
                    props=resource["inputs"],
                    urn=urns[resource["key"]],
                    name=resource["name"],
                    opts=_options(resource, urns.get(resource.get("parent") or "")),
                    provider=None,
                )

                policy.validate(args, _collector(violations, policy.name, level, resource["key"]))
        elif isinstance(policy, StackValidationPolicy):
            stack_resources = [
                PolicyResource(
                    resource_type=r["type"],
                    props=r["inputs"],
                    urn=urns[r["key"]],
                    name=r["name"],
                    opts=_options(r, None),
                    provider=None,
                    parent=None,
                    dependencies=[],
                    property_dependencies={},
                )
                for r in resources
            ]
            policy.validate(
                StackValidationArgs(stack_resources),
                _collector(violations, policy.name, level, None),
            )
    return violations
