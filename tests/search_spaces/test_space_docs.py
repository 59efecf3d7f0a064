"""docs/search-space.md documents every hyperparameter and is up to date with the generator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from search_spaces import VOCABULARY
from search_spaces.presets import preset_names

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "search-space.md"


def test_every_vocabulary_name_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in VOCABULARY:
        assert f"| `{name}` |" in text, name
    for name in preset_names():
        assert f"`{name}`" in text


def test_generated_sections_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_search_space_doc", REPO / "scripts" / "gen_search_space_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = DOC.read_text(encoding="utf-8")
    assert module.render(current) == current, "run: python scripts/gen_search_space_doc.py"
