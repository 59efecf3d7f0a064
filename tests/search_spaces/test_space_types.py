"""Each dimension type parses into its Dimension, round-trips through to_json, and behaves as a
container."""

from __future__ import annotations

import pytest

from search_spaces import DEFAULTS, VOCABULARY, SearchSpace, parse_space
from search_spaces.dimensions import (
    CategoricalDimension,
    Condition,
    FixedDimension,
    FloatDimension,
    IntDimension,
)

EXAMPLE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "conv_blocks": {"type": "int", "low": 1, "high": 4},
    "dense_units": {"type": "int", "low": 32, "high": 512, "step": 32},
    "activation": {"type": "categorical", "choices": ["relu", "elu", "tanh"]},
    "batch_norm": {"type": "fixed", "value": True},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
    "momentum": {
        "type": "float",
        "low": 0.0,
        "high": 0.99,
        "when": {"optimizer": ["sgd", "rmsprop"]},
    },
}


def test_every_type_parses() -> None:
    space = parse_space(EXAMPLE)
    assert space["learning_rate"] == FloatDimension("learning_rate", 1e-4, 1e-1, log=True)
    assert space["conv_blocks"] == IntDimension("conv_blocks", 1, 4)
    assert space["dense_units"] == IntDimension("dense_units", 32, 512, step=32)
    assert space["activation"] == CategoricalDimension("activation", ("relu", "elu", "tanh"))
    assert space["batch_norm"] == FixedDimension("batch_norm", True)
    assert space["momentum"] == FloatDimension(
        "momentum", 0.0, 0.99, when=(Condition("optimizer", ("sgd", "rmsprop")),)
    )
    assert space["momentum"].conditional and not space["learning_rate"].conditional


def test_float_with_step_and_int_with_log() -> None:
    space = parse_space(
        {
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "filters": {"type": "int", "low": 8, "high": 256, "log": True},
        }
    )
    assert space["dropout"] == FloatDimension("dropout", 0.0, 0.5, step=0.1)
    assert space["filters"] == IntDimension("filters", 8, 256, log=True)


def test_ints_become_floats_for_float_hyperparameters() -> None:
    space = parse_space(
        {
            "learning_rate": {"type": "categorical", "choices": [1, 0.5]},
            "dropout": {"type": "float", "low": 0, "high": 1 / 2},
            "label_smoothing": {"type": "fixed", "value": 0},
        }
    )
    lr = space["learning_rate"]
    assert isinstance(lr, CategoricalDimension)
    assert lr.choices == (1.0, 0.5) and isinstance(lr.choices[0], float)
    dropout = space["dropout"]
    assert isinstance(dropout, FloatDimension) and isinstance(dropout.low, float)
    fixed = space["label_smoothing"]
    assert isinstance(fixed, FixedDimension) and isinstance(fixed.value, float)


def test_to_json_round_trips() -> None:
    space = parse_space(EXAMPLE)
    assert space.to_json() == EXAMPLE
    assert parse_space(space.to_json()) == space


def test_container_protocol() -> None:
    space = parse_space(EXAMPLE)
    assert len(space) == len(EXAMPLE)
    assert set(space.names) == set(EXAMPLE)
    assert "momentum" in space and "dropout" not in space
    assert [d.name for d in space] == list(space.names)
    with pytest.raises(KeyError):
        space["dropout"]


def test_dependencies_come_first() -> None:
    raw = {
        "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
        "beta_1": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": ["adam"]}},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    }
    names = parse_space(raw).names
    assert names.index("optimizer") < names.index("momentum")
    assert names.index("optimizer") < names.index("beta_1")


def test_empty_space_is_all_defaults() -> None:
    space = parse_space({})
    assert len(space) == 0
    assert space.resolve({}) == dict(DEFAULTS)
    assert SearchSpace() == space


def test_dimensions_are_frozen_and_hashable() -> None:
    space = parse_space(EXAMPLE)
    hash(space)
    with pytest.raises(AttributeError):
        space["conv_blocks"].name = "x"  # type: ignore[misc]


def test_every_vocabulary_name_accepts_a_fixed_default() -> None:
    raw = {name: {"type": "fixed", "value": hp.default} for name, hp in VOCABULARY.items()}
    space = parse_space(raw)
    assert space.resolve({}) == dict(DEFAULTS)
