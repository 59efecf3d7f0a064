"""validate_params: user-given configurations (warm starts) against a space."""

from __future__ import annotations

from typing import Any

from search_spaces import parse_space

SPACE = parse_space(
    {
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "dense_units": {"type": "int", "low": 32, "high": 256, "step": 32},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
        "batch_norm": {"type": "fixed", "value": True},
    }
)
GOOD: dict[str, Any] = {
    "optimizer": "sgd",
    "momentum": 0.5,
    "learning_rate": 0.01,
    "dense_units": 64,
    "dropout": 0.3,
}


def codes(params: Any) -> dict[tuple[str | int, ...], str]:
    return {p.path: p.code for p in SPACE.validate_params(params)}


def test_valid_params() -> None:
    assert SPACE.validate_params(GOOD) == []
    assert SPACE.validate_params({**GOOD, "batch_norm": True}) == []


def test_inactive_conditional_may_be_left_out() -> None:
    params = {k: v for k, v in GOOD.items() if k != "momentum"}
    assert SPACE.validate_params({**params, "optimizer": "adam"}) == []
    assert codes(params) == {("momentum",): "missing_value"}


def test_missing_sampled_hyperparameter() -> None:
    params = {k: v for k, v in GOOD.items() if k != "dense_units"}
    problems = SPACE.validate_params(params)
    assert [(p.path, p.code) for p in problems] == [(("dense_units",), "missing_value")]
    assert "missing a value for 'dense_units'" in problems[0].message


def test_unknown_and_outside_the_space() -> None:
    problems = {p.path: p for p in SPACE.validate_params({**GOOD, "dropuot": 0.1, "filters": 32})}
    assert problems[("dropuot",)].code == "unknown_name"
    assert "did you mean 'dropout'" in problems[("dropuot",)].message
    assert problems[("filters",)].code == "not_in_space"
    assert "not in the search space" in problems[("filters",)].message


def test_wrong_values() -> None:
    params = {
        "optimizer": "rmsprop",
        "momentum": 0.95,
        "learning_rate": "0.01",
        "dense_units": 48,
        "dropout": True,
        "batch_norm": False,
    }
    problems = {p.path: p for p in SPACE.validate_params(params)}
    assert {k: p.code for k, p in problems.items()} == {
        ("optimizer",): "invalid_choice",
        ("momentum",): "out_of_range",
        ("learning_rate",): "wrong_type",
        ("dense_units",): "off_grid",
        ("dropout",): "wrong_type",
        ("batch_norm",): "fixed_mismatch",
    }
    assert "'rmsprop' is not a choice of 'optimizer'" in problems[("optimizer",)].message
    assert "outside" in problems[("momentum",)].message
    assert "not on the grid" in problems[("dense_units",)].message
    assert "fixed to true" in problems[("batch_norm",)].message


def test_int_dimension_rejects_floats() -> None:
    assert codes({**GOOD, "dense_units": 64.0}) == {("dense_units",): "wrong_type"}


def test_float_grid_tolerance() -> None:
    assert SPACE.validate_params({**GOOD, "dropout": 0.1 + 0.2}) == []
    assert codes({**GOOD, "dropout": 0.25}) == {("dropout",): "off_grid"}


def test_params_must_be_an_object() -> None:
    assert codes([1, 2]) == {(): "not_an_object"}
