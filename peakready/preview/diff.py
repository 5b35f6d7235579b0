"""Compare two offline plans: resources added, removed, and properties changed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Change:
    path: str
    before: Any
    after: Any


@dataclass
class PlanDiff:
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[dict[str, Any], list[Change]]] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` → ``{"a.b[0]": 1}``; empty containers stay as leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def diff_plans(before: dict[str, Any], after: dict[str, Any]) -> PlanDiff:
    old = {r["key"]: r for r in before.get("resources", [])}
    new = {r["key"]: r for r in after.get("resources", [])}
    result = PlanDiff()
    for key in sorted(new.keys() - old.keys()):
        result.added.append(new[key])
    for key in sorted(old.keys() - new.keys()):
        result.removed.append(old[key])
    for key in sorted(new.keys() & old.keys()):
        a = flatten({"inputs": old[key]["inputs"], "parent": old[key].get("parent")})
        b = flatten({"inputs": new[key]["inputs"], "parent": new[key].get("parent")})
        changes = [
            Change(path.removeprefix("inputs."), a.get(path), b.get(path))
            for path in sorted(a.keys() | b.keys())
            if a.get(path) != b.get(path)
        ]
        if changes:
            result.changed.append((new[key], changes))
        else:
            result.unchanged += 1
    return result


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("|", "\\|").replace("\n", "⏎")
    return f"`{text[:77]}…`" if len(text) > 80 else f"`{text}`"


def to_markdown(diff: PlanDiff, baseline_label: str) -> str:
    lines = [
        f"**{len(diff.added)} to add, {len(diff.changed)} to change, "
        f"{len(diff.removed)} to remove**, {diff.unchanged} unchanged (against {baseline_label})",
        "",
    ]
    if diff.empty:
        lines.append("No changes.")
        return "\n".join(lines)
    if diff.added or diff.removed:
        lines += ["| | resource | type | parent |", "| --- | --- | --- | --- |"]
        for sign, group in (("+", diff.added), ("-", diff.removed)):
            for r in group:
                parent = (r.get("parent") or "").split("::")[-1]
                lines.append(f"| {sign} | `{r['name']}` | `{r['type']}` | {parent or '—'} |")
        lines.append("")
    for resource, changes in diff.changed:
        lines += [
            f"<details><summary>~ <code>{resource['name']}</code> ({resource['type']}): "
            f"{len(changes)} propert{'y' if len(changes) == 1 else 'ies'}</summary>",
            "",
            "| property | before | after |",
            "| --- | --- | --- |",
        ]
        lines += [f"| `{c.path}` | {_cell(c.before)} | {_cell(c.after)} |" for c in changes]
        lines += ["", "</details>", ""]
    return "\n".join(lines)
