"""Scikit-learn parameter grids from search spaces."""

from __future__ import annotations

import pytest

from search_spaces import SearchSpaceError, parse_space
from search_spaces.dimensions import MAX_GRID_VALUES


def test_grid_of_every_type() -> None:
    space = parse_space(
        {
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
            "batch_norm": {"type": "fixed", "value": False},
            "conv_blocks": {"type": "int", "low": 1, "high": 3},
            "dense_units": {"type": "int", "low": 32, "high": 128, "step": 32},
            "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
        }
    )
    grid = space.to_param_grid()
    assert grid == {
        "activation": ["relu", "tanh"],
        "batch_norm": [False],
        "conv_blocks": [1, 2, 3],
        "dense_units": [32, 64, 96, 128],
        "dropout": [0.0, 0.1, 0.2, 0.3],  # no float drift (0.30000000000000004)
    }
    assert space.grid_size() == 2 * 1 * 3 * 4 * 4


def test_float_grid_with_small_steps() -> None:
    space = parse_space(
        {"learning_rate": {"type": "float", "low": 0.001, "high": 0.005, "step": 0.001}}
    )
    assert space.to_param_grid()["learning_rate"] == [0.001, 0.002, 0.003, 0.004, 0.005]


def test_float_without_step_and_log_dimensions_are_rejected() -> None:
    space = parse_space(
        {
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "filters": {"type": "int", "low": 8, "high": 64, "log": True},
            "activation": {"type": "categorical", "choices": ["relu"]},
        }
    )
    with pytest.raises(SearchSpaceError) as info:
        space.to_param_grid()
    by_path = {p.path: p for p in info.value.problems}
    assert set(by_path) == {("dropout",), ("learning_rate",), ("filters",)}
    assert "float dimension without 'step' cannot be enumerated" in by_path[("dropout",)].message
    assert "'log'" in by_path[("learning_rate",)].message
    assert all(p.code == "not_enumerable" for p in info.value.problems)
    with pytest.raises(SearchSpaceError):
        space.grid_size()


def test_too_many_int_values() -> None:
    space = parse_space({"batch_size": {"type": "int", "low": 1, "high": MAX_GRID_VALUES + 1}})
    with pytest.raises(SearchSpaceError) as info:
        space.to_param_grid()
    assert info.value.problems[0].code == "grid_too_large"
    ok = parse_space({"batch_size": {"type": "int", "low": 1, "high": MAX_GRID_VALUES}})
    assert ok.grid_size() == MAX_GRID_VALUES


def test_conditional_dimensions_are_enumerated_and_resolved() -> None:
    space = parse_space(
        {
            "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
            "momentum": {
                "type": "categorical",
                "choices": [0.0, 0.9],
                "when": {"optimizer": ["sgd"]},
            },
        }
    )
    assert space.to_param_grid() == {"optimizer": ["adam", "sgd"], "momentum": [0.0, 0.9]}
    assert space.grid_size() == 4  # every combination, conditions not applied
    points = list(space.grid_points())  # resolved and deduplicated
    assert [(p["optimizer"], p["momentum"]) for p in points] == [
        ("adam", 0.0),
        ("sgd", 0.0),
        ("sgd", 0.9),
    ]


def test_empty_space_grid() -> None:
    space = parse_space({})
    assert space.to_param_grid() == {}
    assert space.grid_size() == 1
    assert len(list(space.grid_points())) == 1
