"""JSON schema, presets, and the package's import purity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from search_spaces import DEFAULTS, VOCABULARY, search_space_json_schema
from search_spaces.presets import load_preset, preset_names, preset_space

REPO = Path(__file__).resolve().parents[2]


def test_schema_is_json_and_lists_every_name() -> None:
    schema = search_space_json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(VOCABULARY)
    assert "$ref" not in text  # embeddable in an OpenAPI document


def test_schema_shapes_match_each_kind() -> None:
    props = search_space_json_schema()["properties"]

    def types(name: str) -> list[str]:
        return [shape["properties"]["type"]["const"] for shape in props[name]["oneOf"]]

    assert types("learning_rate") == ["float", "categorical", "fixed"]
    assert types("conv_blocks") == ["int", "categorical", "fixed"]
    assert types("activation") == ["categorical", "fixed"]
    assert types("batch_norm") == ["categorical", "fixed"]
    momentum_float = props["momentum"]["oneOf"][0]
    assert momentum_float["properties"]["high"]["exclusiveMaximum"] == 1.0
    assert momentum_float["required"] == ["type", "low", "high"]


def _matches(shape: dict[str, Any], body: dict[str, Any]) -> bool:
    """A small structural check (no jsonschema dependency): const type, required, keys."""
    return (
        shape["properties"]["type"]["const"] == body["type"]
        and all(k in body for k in shape["required"])
        and all(k in shape["properties"] for k in body)
    )


@pytest.mark.parametrize("name", ["cifar10_seed", "seed_grid", "digits_small"])
def test_presets_fit_the_schema(name: str) -> None:
    props = search_space_json_schema()["properties"]
    for hp, body in load_preset(name).items():
        assert sum(_matches(s, body) for s in props[hp]["oneOf"]) == 1, (hp, body)


def test_preset_names() -> None:
    assert preset_names() == ("cifar10_seed", "digits_small", "seed_grid")
    with pytest.raises(KeyError, match="available"):
        load_preset("nope")


@pytest.mark.parametrize("name", ["cifar10_seed", "seed_grid", "digits_small"])
def test_presets_parse_and_round_trip(name: str) -> None:
    space = preset_space(name)
    assert len(space) > 0
    assert space.to_json() == load_preset(name)


def test_seed_grid_has_324_points() -> None:
    space = preset_space("seed_grid")
    assert space.grid_size() == 324
    grid = space.to_param_grid()
    assert grid["dense_units"] == [16, 32, 64]
    assert grid["learning_rate"] == [0.01, 0.05, 0.1, 0.3]
    assert grid["conv_blocks"] == [0]


def test_cifar10_seed_contains_the_seed_model() -> None:
    # The defaults are the seed model, and every knob offers the seed's value.
    space = preset_space("cifar10_seed")
    for dim in space:
        assert dim.can_take(DEFAULTS[dim.name]), dim.name
    for knob in ("filters", "dense_units", "dropout", "learning_rate", "activation", "optimizer"):
        assert knob in space
    assert space.validate_params({d.name: DEFAULTS[d.name] for d in space}) == []


def test_digits_small_stays_small() -> None:
    space = preset_space("digits_small")
    conv_blocks = space["conv_blocks"].to_json()
    assert conv_blocks["high"] <= 2  # 8x8 images: at most three halvings
    assert space["filters"].to_json()["high"] <= 32


def test_package_data_covers_presets() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"presets/*.json"' in text


def test_search_spaces_imports_nothing_heavy() -> None:
    code = (
        "import sys, search_spaces, search_spaces.presets, search_spaces.space;"
        "search_spaces.presets.preset_space('cifar10_seed');"
        "heavy = ('tensorflow', 'keras', 'keras_tuner', 'optuna', 'sqlalchemy', 'sklearn', "
        "'requests', 'httpx', 'psycopg');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
