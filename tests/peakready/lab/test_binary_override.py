"""``lab.binaries`` rehearses the versions production runs: Debian 12's own Patroni 3.0.2.

Patroni 3.0 reports a streaming replica's state as ``running`` (4.x: ``streaming``);
the lab judges replication from the leader's view (``pg_stat_replication`` through
``GET /patroni``), so a lab on Debian's package comes up healthy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from lab_run import lab_cli

from peakready.topology import REPO_ROOT, stacks_dir

pytestmark = pytest.mark.lab

BASE = 24000
DEBIAN_PATRONI = Path("/usr/bin/patroni")
LAB_DIR = REPO_ROOT / ".lab" / f"pytest-patroni3-{BASE}"


@pytest.mark.skipif(not DEBIAN_PATRONI.exists(), reason="Debian package patroni not installed")
def test_a_lab_on_debians_patroni_comes_up_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = yaml.safe_load((stacks_dir() / "Pulumi.dev.yaml").read_text())
    lab = document["config"].setdefault("peakready:lab", {})
    lab.setdefault("binaries", {})["patroni"] = str(DEBIAN_PATRONI)
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("PEAKREADY_STACKS_DIR", str(tmp_path))
    try:
        up = lab_cli(BASE, LAB_DIR, "up", "--stack", "dev")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr
        state = (LAB_DIR / "state.json").read_text()
        assert str(DEBIAN_PATRONI) in state  # the override, not .venv's Patroni 4
        status = lab_cli(BASE, LAB_DIR, "status", "--stack", "dev", "--json")
        assert status.returncode == 0, status.stdout
        assert '"healthy": true' in status.stdout
    finally:
        lab_cli(BASE, LAB_DIR, "down", "--stack", "dev", "--purge", timeout=120)
        shutil.rmtree(LAB_DIR, ignore_errors=True)
