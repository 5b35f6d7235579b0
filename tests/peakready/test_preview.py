import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from peakready import preview
from peakready.errors import ConfigError, PeakreadyError
from peakready.preview.diff import diff_plans, flatten, to_markdown
from peakready.preview.runner import build_plan, mask
from peakready.topology import REPO_ROOT

NOW = "2026-11-01T00:00:00+00:00"


def _resource(name, kind="aws:s3/bucket:Bucket", **inputs):
    return {
        "urn": f"urn:{kind}::{name}",
        "type": kind,
        "name": name,
        "parent_urn": "",
        "protect": False,
        "inputs": inputs,
    }


@pytest.fixture
def now(monkeypatch):
    monkeypatch.setenv("PEAKREADY_NOW", NOW)


def _stack_copy(folder: Path, base: str, **settings) -> None:
    document = yaml.safe_load((REPO_ROOT / "stacks" / f"Pulumi.{base}.yaml").read_text())
    for key, value in settings.items():
        document["config"][f"peakready:{key}"] = value
    (folder / f"Pulumi.{base}.yaml").write_text(yaml.safe_dump(document))


def test_diff_reports_added_removed_and_changed_properties():
    before = build_plan(
        "s",
        [_resource("kept", tags={"a": "1"}, size=1), _resource("gone"), _resource("same", x=1)],
        {},
        [],
        None,
    )
    after = build_plan(
        "s",
        [_resource("kept", tags={"a": "2"}, size=1), _resource("new"), _resource("same", x=1)],
        {},
        [],
        None,
    )
    diff = diff_plans(before, after)
    assert [r["name"] for r in diff.added] == ["new"]
    assert [r["name"] for r in diff.removed] == ["gone"]
    ((resource, changes),) = diff.changed
    assert resource["name"] == "kept"
    assert [(c.path, c.before, c.after) for c in changes] == [("tags.a", "1", "2")]
    assert diff.unchanged == 1
    text = to_markdown(diff, "`base.json`")
    assert "**1 to add, 1 to change, 1 to remove**, 1 unchanged" in text
    assert "| + | `new` |" in text
    assert "| - | `gone` |" in text
    assert "| `tags.a` | `1` | `2` |" in text


def test_identical_plans_have_no_changes():
    plan = build_plan("s", [_resource("a", x=[1, 2])], {}, [], None)
    diff = diff_plans(plan, copy.deepcopy(plan))
    assert diff.empty
    assert "No changes." in to_markdown(diff, "x")


def test_flatten_and_mask():
    assert flatten({"a": {"b": [1, {"c": 2}]}, "e": []}) == {"a.b[0]": 1, "a.b[1].c": 2, "e": []}
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}
    assert mask({"token": secret, "n": 2.0, "list": [secret]}) == {
        "list": ["[secret]"],
        "n": 2,
        "token": "[secret]",
    }


def test_preview_against_a_baseline_file_prints_diff_az_summary_and_policies(tmp_path, now, capsys):
    out = tmp_path / "plan.json"
    assert preview.run("prod", out=out) == 0
    first = out.read_text()
    assert "mock-" not in first  # the generated AUTH token stays masked
    baseline = json.loads(first)
    baseline["resources"] = [
        r for r in baseline["resources"] if r["name"] != "alarms-SearchNodeLost"
    ]
    (asg,) = [r for r in baseline["resources"] if r["name"] == "app-asg"]
    asg["inputs"]["maxSize"] = 100
    baseline["resources"].append({**asg, "key": "x::old", "name": "old", "type": "x"})
    base_file = tmp_path / "base.json"
    base_file.write_text(json.dumps(baseline))
    capsys.readouterr()

    assert preview.run("prod", baseline=base_file, out=out) == 0
    text = capsys.readouterr().out
    assert out.read_text() == first  # deterministic: same plan, byte for byte
    assert "**1 to add, 1 to change, 1 to remove**" in text
    assert "| `maxSize` | `100` | `120` |" in text
    tiers = ("load balancer", "app", "database", "cache", "search", "queue", "back office")
    for tier in (*tiers, "back-office database"):
        assert f"| {tier} | eu-central-1a, eu-central-1b, eu-central-1c | ✅ 3 |" in text
    assert "All 8 policies pass on every resource." in text
    assert "| black-friday-prewarm | 2026-11-26T21:00:00Z | 96 | 120 | 96 |" in text
    assert "| black-friday-release | 2026-11-28T05:00:00Z | 45 | 120 | unchanged |" in text


def test_mandatory_violation_fails_the_preview(tmp_path, monkeypatch, now, capsys):
    _stack_copy(tmp_path, "dev", cache={"node_type": "cache.t4g.micro", "replicas": 0})
    monkeypatch.setenv("PEAKREADY_STACKS_DIR", str(tmp_path))
    assert preview.run("dev", out=tmp_path / "plan.json") == 1
    text = capsys.readouterr().out
    assert "| every-tier-multi-az | mandatory | `cache-redis` | Redis must have a replica" in text


def test_bad_stack_file_is_one_line_before_any_pulumi_work(tmp_path, monkeypatch):
    _stack_copy(tmp_path, "dev", availability_zones=1)
    monkeypatch.setenv("PEAKREADY_STACKS_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as error:
        preview.run("dev", out=tmp_path / "plan.json")
    assert len(error.value.lines) == 1
    assert "peakready:availability_zones" in error.value.lines[0]


def test_unreadable_baseline_is_a_user_error(tmp_path):
    with pytest.raises(PeakreadyError, match=r"--baseline .*missing.json: no such file"):
        preview.load_baseline(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(PeakreadyError, match="expected a plan written by"):
        preview.load_baseline(tmp_path / "x.json")


def test_against_an_unknown_ref_is_a_user_error():
    with pytest.raises(PeakreadyError, match="--against no-such-ref-xyz: not a git ref"):
        preview.baseline_from_ref("no-such-ref-xyz", "prod")


def test_against_a_ref_without_infra_gives_an_empty_baseline():
    root = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    plan, note = preview.baseline_from_ref(root, "prod")
    assert plan["resources"] == []
    assert "has no infra/" in note


def test_against_head_runs_that_ref_program_in_a_scratch_copy(now):
    plan, note = preview.baseline_from_ref("HEAD", "prod")
    assert note.startswith("`HEAD` (")
    assert plan["error"] is None
    assert plan["outputs"]["target"] == "aws"
    assert len(plan["resources"]) > 100


def test_cli_preview_prod(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "peakready.cli",
            "preview",
            "--stack",
            "prod",
            "--out",
            str(tmp_path / "p.json"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "#### Availability zones per tier" in done.stdout
    assert json.loads((tmp_path / "p.json").read_text())["stack"] == "prod"
