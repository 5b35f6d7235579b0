"""The README's stack settings reference is generated from the model and kept in step."""

from __future__ import annotations

from peakready.settings_doc import BEGIN, END, render_reference
from peakready.topology import REPO_ROOT, Topology


def test_readme_reference_matches_the_model() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip()
    assert block == render_reference(), "run: python -m peakready.settings_doc --write"


def test_every_top_level_setting_is_documented() -> None:
    table = render_reference()
    for name in Topology.model_fields:
        if name != "stack":
            assert f"| `peakready:{name}` |" in table
    assert "| `peakready:app.min_size` | int | `2` |" in table
