import json
from pathlib import Path

import pytest
import yaml

from peakready import planner
from peakready.planner import DEFAULT_REQUESTS_PER_INSTANCE, TierCheck, assess, spread_loss
from peakready.topology import REPO_ROOT, DatabaseDeployment, Topology


def _check(plan, tier, scenario):
    (found,) = [c for c in plan.checks if c.tier == tier and c.scenario == scenario]
    return found


def _write_stack(folder: Path, name: str, **settings) -> None:
    document = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    for key, value in settings.items():
        document["config"][f"peakready:{key}"] = value
    (folder / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(document))


def test_worst_az_holds_ceil_n_over_azs():
    assert spread_loss(96, 3) == 32
    assert spread_loss(10, 3) == 4
    assert spread_loss(2, 3) == 1
    assert spread_loss(0, 3) == 0


def test_prod_is_statically_stable_with_the_expected_figures():
    plan = planner.plan_for(Topology.load("prod"))
    assert plan.stable, [c.verdict() for c in plan.failures]
    black_friday = _check(plan, "app", "window black-friday")
    # 12000 req/s * 1.3 / 250 = 62.4 → 63 instances; 96 scheduled, 64 left after 32 are lost.
    assert (black_friday.needed, black_friday.capacity, black_friday.after_az_loss) == (63, 96, 64)
    search = _check(plan, "search", "window black-friday")
    # 2400 queries/s * 1.3 = 3120; 6 nodes over 3 AZs keep 4 * 800 = 3200.
    assert search.needed == pytest.approx(3120)
    assert search.after_az_loss == 3200
    writes = _check(plan, "database writes", "window black-friday")
    assert writes.needed == pytest.approx(1040)
    assert writes.after_az_loss == 1500


def test_window_that_cannot_survive_an_az_loss_names_tier_and_shortfall():
    topology = Topology.load("prod")
    window = topology.peak_windows[1].model_copy(update={"app_min_capacity": 66})
    plan = assess(topology.model_copy(update={"peak_windows": [window]}), 250)
    assert not plan.stable
    (failure,) = plan.failures
    assert (failure.tier, failure.scenario) == ("app", "window black-friday")
    # 66 instances over 3 AZs: 22 lost, 44 left; 63 needed → short by 19.
    assert failure.shortfall == 19
    assert failure.verdict() == (
        "app: window black-friday: short by 19 instances after losing one AZ "
        "(44 in place, 63 needed)"
    )


def test_capacity_below_need_with_every_az_up_is_reported_as_such():
    check = TierCheck("cache", "forecast peak", "ops/s", 100, 130, 120, 80)
    assert not check.covers_peak
    assert check.verdict() == (
        "cache: forecast peak: short by 50 ops/s with every AZ up (120 in place, 130 needed)"
    )


def test_requests_per_instance_comes_from_the_bench_when_unset(tmp_path):
    topology = Topology.load("dev")
    unset = topology.model_copy(
        update={"app": topology.app.model_copy(update={"requests_per_instance": None})}
    )
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"storefront": {"requests_per_instance": 321.5}}))
    figure, source = planner.requests_per_instance(unset, results)
    assert figure == 321.5
    assert "measured" in source
    figure, source = planner.requests_per_instance(unset, tmp_path / "missing.json")
    assert figure == DEFAULT_REQUESTS_PER_INSTANCE
    assert source.startswith("DEFAULT")
    assert planner.requests_per_instance(topology, results)[0] == 150


def test_plan_command_passes_on_prod(capsys):
    assert planner.run("prod") == 0
    out = capsys.readouterr().out
    assert "statically stable" in out
    assert "black-friday" in out


def test_plan_command_fails_naming_the_tier_and_shortfall(tmp_path, monkeypatch, capsys):
    windows = [
        {
            "name": "cyber-monday",
            "start": "2026-11-30T00:00",
            "end": "2026-11-30T23:00",
            "timezone": "Europe/Berlin",
            "requests_per_s": 12000,
            "app_min_capacity": 66,
        }
    ]
    _write_stack(tmp_path, "fragile", peak_windows=windows)
    monkeypatch.setenv("PEAKREADY_STACKS_DIR", str(tmp_path))
    assert planner.run("fragile") == 1
    err = capsys.readouterr().err
    assert (
        "peakready: plan: app: window cyber-monday: short by 19 instances after losing one AZ"
        in err
    )


def test_cluster_keeps_one_reader_after_an_az_loss():
    topology = Topology.load("staging")
    cluster = topology.model_copy(
        update={
            "database": topology.database.model_copy(
                update={"deployment": DatabaseDeployment.MULTI_AZ_CLUSTER}
            )
        }
    )
    reads = _check(assess(cluster, 250), "database reads", "forecast peak")
    assert reads.capacity == 2 * cluster.database.replica_reads_per_s
    assert reads.after_az_loss == cluster.database.replica_reads_per_s


def test_planner_suggests_a_statically_stable_tracking_target():
    topology = Topology.load("prod")
    app = topology.app.model_copy(update={"target_requests_per_target": 12000})
    plan = assess(topology.model_copy(update={"app": app}), 250)
    # 250 req/s * 60 * 2/3 / 1.3 = 7,692 per target per minute.
    assert any("at most 7,692/min keeps it statically stable" in note for note in plan.notes)
