"""Offline preview: run the Pulumi program under mocks, diff it, check it against the policies.

No Pulumi CLI and no cloud credentials are needed, so every pull request gets a preview.
``peakready preview --stack S [--baseline FILE | --against REF] [--out FILE]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import peakready.preview.diff as plandiff
import peakready.preview.summary as summary
from peakready.errors import PeakreadyError
from peakready.preview.runner import PLAN_FORMAT, build_plan
from peakready.topology import REPO_ROOT, Topology, pinned_now, stacks_dir

RUNNER = Path(__file__).with_name("runner.py")
BASELINE_TIMEOUT_S = 180


def plan_stack(stack: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """The plan of ``stack`` from this checkout's program, recorded in-process."""
    Topology.load(stack)  # one line per bad field, before any Pulumi machinery runs
    pinned_now()  # and one for a PEAKREADY_NOW the program could not read
    # Imported here: Pulumi's SDK loads only in the preview's own process.
    from peakready.preview.runner import record

    return record(root, stack, stacks=stacks_dir())


def load_baseline(path: Path) -> dict[str, Any]:
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        raise PeakreadyError(f"--baseline {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise PeakreadyError(f"--baseline {path}: not a readable plan.json ({exc})") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise PeakreadyError(
            f"--baseline {path}: expected a plan written by `peakready preview --out` "
            f"(format {PLAN_FORMAT})"
        )
    return plan


def _git(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def baseline_from_ref(ref: str, stack: str) -> tuple[dict[str, Any], str]:
    """Run ``ref``'s program and stack file (in a scratch copy) under mocks.

    Returns the plan and a note. A ref without ``infra/`` or without the stack file
    gives an empty baseline: everything is new.
    """
    if shutil.which("git") is None:
        raise PeakreadyError("--against: git is not installed")
    commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if commit.returncode != 0:
        raise PeakreadyError(
            f"--against {ref}: not a git ref in {REPO_ROOT} (fetch it first, e.g. "
            "`git fetch origin main`)"
        )
    sha = commit.stdout.strip()
    listing = _git("ls-tree", "-r", "--name-only", sha, "--", "infra", "stacks", "peakready")
    files = listing.stdout.split()
    empty = build_plan(stack, [], {}, [], None)
    if not any(f.startswith("infra/") for f in files):
        return empty, f"`{ref}` ({sha[:8]}) has no infra/: every resource is new"
    if f"stacks/Pulumi.{stack}.yaml" not in files:
        return empty, f"`{ref}` ({sha[:8]}) has no stack {stack}: every resource is new"
    with tempfile.TemporaryDirectory(prefix="peakready-baseline-") as scratch:
        root = Path(scratch)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha, "--", "infra", "stacks"]
            + (["peakready"] if any(f.startswith("peakready/") for f in files) else []),
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise PeakreadyError(f"--against {ref}: git archive failed: {archive.stderr!r}")
        subprocess.run(["tar", "-x", "-C", scratch], input=archive.stdout, check=True)
        runner = root / "_peakready_runner.py"
        shutil.copy(RUNNER, runner)
        shutil.copy(RUNNER.with_name("slim.py"), root / "slim.py")
        out = root / "plan.json"
        # The ref's own peakready package (its topology model) comes first on the path.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([scratch, str(REPO_ROOT)])}
        env.pop("PEAKREADY_STACKS_DIR", None)
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    str(runner),
                    "--root",
                    scratch,
                    "--stack",
                    stack,
                    "--out",
                    str(out),
                ],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                timeout=BASELINE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PeakreadyError(
                f"--against {ref}: baseline program ran over {BASELINE_TIMEOUT_S} s"
            ) from None
        if done.returncode != 0 or not out.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PeakreadyError(f"--against {ref}: baseline program failed: {last}")
        plan = json.loads(out.read_text())
    note = f"`{ref}` ({sha[:8]})"
    if plan.get("error"):
        note += f" — its program failed there: {plan['error']}"
    return plan, note


def render(
    plan: dict[str, Any],
    topology: Topology,
    baseline: dict[str, Any] | None,
    baseline_label: str,
    violations: list[Any],
    elapsed_s: float,
) -> str:
    lines = [f"### peakready preview — stack `{plan['stack']}`", ""]
    if plan.get("error"):
        lines += [f"**The program failed:** {plan['error']}", ""]
    for diag in plan.get("diagnostics", []):
        lines.append(f"- {diag['level']}: {diag['message']}")
    lines += [
        f"{len(plan['resources'])} resources, {topology.az_count} AZs "
        f"({', '.join(topology.az_names)}), recorded offline under mocks in {elapsed_s:.1f} s.",
        "",
        "#### Availability zones per tier",
        "",
        summary.to_markdown(summary.tier_spans(plan), topology.az_count),
        "",
        "#### Peak windows: scheduled app capacity",
        "",
        summary.schedule_markdown(plan),
        "",
    ]
    if baseline is not None:
        lines += [
            "#### Changes",
            "",
            plandiff.to_markdown(plandiff.diff_plans(baseline, plan), baseline_label),
            "",
        ]
    lines += ["#### Policies", ""]
    if violations:
        lines += ["| policy | level | resource | violation |", "| --- | --- | --- | --- |"]
        for v in violations:
            where = (v.resource or "stack").split("::")[-1]
            lines.append(f"| {v.policy} | {v.level} | `{where}` | {v.message} |")
    else:
        # Imported here: pulumi-policy only when a plan is checked.
        from peakready.policy import POLICIES

        lines.append(f"All {len(POLICIES)} policies pass on every resource.")
    return "\n".join(lines)


def run(
    stack: str,
    *,
    baseline: Path | None = None,
    against: str | None = None,
    out: Path | None = None,
) -> int:
    """``peakready preview``: 0 when the program runs and no mandatory policy is violated."""
    started = time.monotonic()
    topology = Topology.load(stack)
    plan = plan_stack(stack)
    elapsed = time.monotonic() - started

    base: dict[str, Any] | None = None
    label = ""
    if baseline is not None:
        base, label = load_baseline(baseline), f"`{baseline}`"
    elif against is not None:
        base, label = baseline_from_ref(against, stack)

    # Imported here: pulumi-policy only when a plan is checked.
    from peakready.policy import evaluate

    violations = evaluate(plan) if not plan.get("error") else []
    target = out or REPO_ROOT / "reports" / "preview" / stack / "plan.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(plan, indent=1, sort_keys=True) + "\n")

    print(render(plan, topology, base, label, violations, elapsed))
    print(f"\nplan written to `{target}`")
    if plan.get("error"):
        return 1
    return 1 if any(v.mandatory for v in violations) else 0
