"""Bundled search spaces (JSON files under ``search_spaces/presets/``).

- ``cifar10_seed``: the knobs the seed CIFAR-10 model tuned, with the seed's values inside.
- ``seed_grid``: the seed grid-search notebook's grid (324 points, an MLP).
- ``digits_small``: a tiny space for demos on the 8x8 digits images (seconds per trial on CPU).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .parsing import parse_space
from .space import SearchSpace

__all__ = ["load_preset", "preset_names", "preset_space"]


def _folder() -> Any:
    # ``presets`` is also this module's name, so the folder is reached through the package.
    return resources.files("search_spaces").joinpath("presets")


def preset_names() -> tuple[str, ...]:
    """The names of the bundled presets, sorted."""
    files = _folder()
    return tuple(
        sorted(p.name[: -len(".json")] for p in files.iterdir() if p.name.endswith(".json"))
    )


def load_preset(name: str) -> dict[str, Any]:
    """The raw JSON search space of preset ``name`` (a fresh dict); KeyError if unknown."""
    names = preset_names()
    if name not in names:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(names)}")
    text = _folder().joinpath(f"{name}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):  # pragma: no cover - guarded by the tests
        raise ValueError(f"preset {name!r} is not a JSON object")
    return data


def preset_space(name: str) -> SearchSpace:
    """Preset ``name`` parsed into a :class:`SearchSpace`."""
    return parse_space(load_preset(name))
