"""validate_space reports every problem, each with its JSON path, a code and a readable sentence."""

from __future__ import annotations

from typing import Any

import pytest

from search_spaces import Problem, SearchSpaceError, parse_space, validate_space
from search_spaces.dimensions import MAX_CHOICES, MAX_DIMENSIONS


def only(raw: Any, path: tuple[str | int, ...], code: str) -> str:
    """Assert ``raw`` has exactly one problem, at ``path`` with ``code``; return its message."""
    problems = validate_space(raw)
    assert [(p.path, p.code) for p in problems] == [(path, code)], problems
    return problems[0].message


def test_valid_space_has_no_problems() -> None:
    assert validate_space({"dropout": {"type": "float", "low": 0.1, "high": 0.5}}) == []


@pytest.mark.parametrize("raw", [[], "x", 3, None, True])
def test_space_must_be_an_object(raw: Any) -> None:
    msg = only(raw, (), "not_an_object")
    assert "JSON object" in msg


def test_unknown_name_suggests_the_closest() -> None:
    msg = only({"learning_rat": {"type": "fixed", "value": 0.1}}, ("learning_rat",), "unknown_name")
    assert msg == "unknown hyperparameter 'learning_rat'; did you mean 'learning_rate'?"


def test_unknown_name_without_close_match() -> None:
    msg = only({"zzzzzz": {"type": "fixed", "value": 1}}, ("zzzzzz",), "unknown_name")
    assert msg == "unknown hyperparameter 'zzzzzz'"


def test_dimension_must_be_an_object() -> None:
    msg = only({"dropout": 0.5}, ("dropout",), "dimension_not_object")
    assert "object" in msg


def test_missing_type() -> None:
    msg = only({"dropout": {"low": 0.0, "high": 0.5}}, ("dropout",), "missing_type")
    assert "missing 'type'" in msg and "'float'" in msg


def test_unknown_type_suggests() -> None:
    msg = only(
        {"dropout": {"type": "flaot", "low": 0.0, "high": 0.5}}, ("dropout", "type"), "unknown_type"
    )
    assert "'flaot'" in msg and "did you mean 'float'" in msg


def test_unknown_key() -> None:
    msg = only(
        {"dropout": {"type": "float", "low": 0.0, "high": 0.5, "steps": 0.1}},
        ("dropout", "steps"),
        "unknown_key",
    )
    assert "unknown key 'steps'" in msg and "did you mean 'step'" in msg
    msg = only(
        {"activation": {"type": "categorical", "choices": ["relu"], "low": 1}},
        ("activation", "low"),
        "unknown_key",
    )
    assert "'low'" in msg


@pytest.mark.parametrize(
    ("name", "body", "missing"),
    [
        ("dropout", {"type": "float", "high": 0.5}, "low"),
        ("filters", {"type": "int", "low": 1}, "high"),
        ("activation", {"type": "categorical"}, "choices"),
    ],
)
def test_missing_keys(name: str, body: dict[str, Any], missing: str) -> None:
    msg = only({name: body}, (name,), "missing_key")
    assert f"'{missing}'" in msg


def test_missing_fixed_value() -> None:
    msg = only({"dropout": {"type": "fixed"}}, ("dropout",), "missing_key")
    assert "'value'" in msg


def test_low_is_a_string() -> None:
    msg = only(
        {"dropout": {"type": "float", "low": "0", "high": 0.5}}, ("dropout", "low"), "wrong_type"
    )
    assert msg == "'low' must be a number, not a string"


def test_bool_is_not_a_number() -> None:
    msg = only(
        {"dropout": {"type": "float", "low": False, "high": 0.5}}, ("dropout", "low"), "wrong_type"
    )
    assert "not a boolean" in msg
    msg = only(
        {"filters": {"type": "int", "low": 8, "high": True}}, ("filters", "high"), "wrong_type"
    )
    assert "not a boolean" in msg


def test_nan_and_infinity_are_rejected() -> None:
    msg = only(
        {"dropout": {"type": "float", "low": 0.0, "high": float("nan")}},
        ("dropout", "high"),
        "wrong_type",
    )
    assert "NaN" in msg


def test_int_dimension_with_float_bounds() -> None:
    msg = only(
        {"filters": {"type": "int", "low": 8.0, "high": 64}}, ("filters", "low"), "wrong_type"
    )
    assert msg == "'low' of an int dimension must be an integer, not 8.0"
    msg = only(
        {"filters": {"type": "int", "low": 8, "high": 64, "step": 8.5}},
        ("filters", "step"),
        "wrong_type",
    )
    assert "integer" in msg


def test_log_must_be_boolean() -> None:
    msg = only(
        {"learning_rate": {"type": "float", "low": 0.1, "high": 0.5, "log": 1}},
        ("learning_rate", "log"),
        "wrong_type",
    )
    assert "true or false" in msg


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("activation", {"type": "float", "low": 0.0, "high": 1.0}, "categorical hyperparameter"),
        ("conv_blocks", {"type": "float", "low": 1.0, "high": 3.0}, "integer hyperparameter"),
        ("dropout", {"type": "int", "low": 0, "high": 1}, "float hyperparameter"),
        ("batch_norm", {"type": "int", "low": 0, "high": 1}, "boolean hyperparameter"),
    ],
)
def test_type_incompatible_with_kind(name: str, body: dict[str, Any], words: str) -> None:
    msg = only({name: body}, (name, "type"), "incompatible_type")
    assert words in msg and f"'{body['type']}'" in msg


def test_bool_hyperparameter_takes_only_booleans() -> None:
    msg = only(
        {"batch_norm": {"type": "categorical", "choices": [True, 1]}},
        ("batch_norm", "choices", 1),
        "invalid_choice",
    )
    assert "true or false" in msg
    only(
        {"batch_norm": {"type": "fixed", "value": "yes"}}, ("batch_norm", "value"), "invalid_value"
    )
    assert validate_space({"batch_norm": {"type": "categorical", "choices": [True, False]}}) == []


def test_low_not_below_high() -> None:
    msg = only(
        {"dropout": {"type": "float", "low": 0.5, "high": 0.5}},
        ("dropout", "low"),
        "low_not_below_high",
    )
    assert "must be below" in msg and "'fixed'" in msg
    only(
        {"filters": {"type": "int", "low": 64, "high": 8}}, ("filters", "low"), "low_not_below_high"
    )


def test_log_needs_positive_low() -> None:
    msg = only(
        {"regularization": {"type": "float", "low": 0.0, "high": 0.1, "log": True}},
        ("regularization", "low"),
        "log_needs_positive_low",
    )
    assert "> 0" in msg
    only(
        {"conv_blocks": {"type": "int", "low": 0, "high": 4, "log": True}},
        ("conv_blocks", "low"),
        "log_needs_positive_low",
    )


def test_log_with_step() -> None:
    msg = only(
        {"learning_rate": {"type": "float", "low": 0.1, "high": 0.5, "log": True, "step": 0.1}},
        ("learning_rate", "step"),
        "log_with_step",
    )
    assert "'log' and 'step'" in msg


@pytest.mark.parametrize("step", [0, -8])
def test_step_must_be_positive(step: int) -> None:
    msg = only(
        {"filters": {"type": "int", "low": 8, "high": 64, "step": step}},
        ("filters", "step"),
        "step_not_positive",
    )
    assert "positive" in msg


def test_step_must_divide_the_range() -> None:
    msg = only(
        {"filters": {"type": "int", "low": 8, "high": 30, "step": 8}},
        ("filters", "step"),
        "step_not_dividing",
    )
    assert "does not divide" in msg and "8..30" in msg
    only(
        {"dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.2}},
        ("dropout", "step"),
        "step_not_dividing",
    )


def test_float_step_uses_a_tolerance() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in floating point.
    assert (
        validate_space({"dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}}) == []
    )
    assert (
        validate_space({"dropout": {"type": "float", "low": 0.1, "high": 0.7, "step": 0.2}}) == []
    )


@pytest.mark.parametrize(
    ("name", "body", "path", "range_text"),
    [
        (
            "dropout",
            {"type": "float", "low": 0.0, "high": 0.99},
            ("dropout", "high"),
            "[0.0, 0.95]",
        ),
        (
            "momentum",
            {"type": "float", "low": 0.0, "high": 1.0},
            ("momentum", "high"),
            "[0.0, 1.0)",
        ),
        ("conv_blocks", {"type": "int", "low": -1, "high": 3}, ("conv_blocks", "low"), "[0, 8]"),
        ("kernel_size", {"type": "int", "low": 1, "high": 13}, ("kernel_size", "high"), "[1, 11]"),
    ],
)
def test_bounds_outside_the_vocabulary_range(
    name: str, body: dict[str, Any], path: tuple[str, ...], range_text: str
) -> None:
    msg = only({name: body}, path, "out_of_range")
    assert "outside the allowed range" in msg and range_text in msg


def test_categorical_problems() -> None:
    only(
        {"activation": {"type": "categorical", "choices": []}},
        ("activation", "choices"),
        "no_choices",
    )
    only(
        {"activation": {"type": "categorical", "choices": "relu"}},
        ("activation", "choices"),
        "wrong_type",
    )
    msg = only(
        {"activation": {"type": "categorical", "choices": ["relu", "tanh", "relu"]}},
        ("activation", "choices", 2),
        "duplicate_choice",
    )
    assert "duplicate choice 'relu'" in msg
    msg = only(
        {"activation": {"type": "categorical", "choices": ["relu", "sigmod"]}},
        ("activation", "choices", 1),
        "invalid_choice",
    )
    assert "'sigmod'" in msg and "'sigmoid'" in msg
    problems = validate_space({"dense_units": {"type": "categorical", "choices": [16, 0, 32.5]}})
    assert [p.path for p in problems] == [
        ("dense_units", "choices", 1),
        ("dense_units", "choices", 2),
    ]
    assert "[1, 8192]" in problems[0].message
    assert "not an integer" in problems[1].message


def test_int_and_float_duplicates_for_float_hyperparameter() -> None:
    only(
        {"learning_rate": {"type": "categorical", "choices": [1, 1.0]}},
        ("learning_rate", "choices", 1),
        "duplicate_choice",
    )


def test_fixed_value_not_allowed() -> None:
    msg = only(
        {"optimizer": {"type": "fixed", "value": "adamm"}}, ("optimizer", "value"), "invalid_value"
    )
    assert "'adamm'" in msg and "'adam'" in msg
    only({"dropout": {"type": "fixed", "value": 2.0}}, ("dropout", "value"), "invalid_value")
    only({"filters": {"type": "fixed", "value": 32.0}}, ("filters", "value"), "invalid_value")


def test_limits() -> None:
    msg = only(
        {
            "activation": {
                "type": "categorical",
                "choices": [f"x{i}" for i in range(MAX_CHOICES + 1)],
            }
        },
        ("activation", "choices"),
        "too_many_choices",
    )
    assert str(MAX_CHOICES) in msg
    raw = {f"hp{i}": {} for i in range(MAX_DIMENSIONS + 1)}
    problems = validate_space(raw)
    assert problems[0].code == "too_many_dimensions" and problems[0].path == ()
    assert str(MAX_DIMENSIONS) in problems[0].message


# --- when -------------------------------------------------------------------------------------

OPT = {"type": "categorical", "choices": ["adam", "sgd"]}


def test_when_must_be_an_object_of_lists() -> None:
    msg = only(
        {"optimizer": OPT, "momentum": {"type": "fixed", "value": 0.9, "when": ["optimizer"]}},
        ("momentum", "when"),
        "when_not_object",
    )
    assert "object" in msg
    msg = only(
        {
            "optimizer": OPT,
            "momentum": {"type": "fixed", "value": 0.9, "when": {"optimizer": "sgd"}},
        },
        ("momentum", "when", "optimizer"),
        "when_not_list",
    )
    assert "list" in msg
    only(
        {"optimizer": OPT, "momentum": {"type": "fixed", "value": 0.9, "when": {"optimizer": []}}},
        ("momentum", "when", "optimizer"),
        "when_empty",
    )


def test_when_unknown_name_suggests() -> None:
    msg = only(
        {
            "optimizer": OPT,
            "momentum": {"type": "fixed", "value": 0.9, "when": {"optimiser": ["sgd"]}},
        },
        ("momentum", "when", "optimiser"),
        "when_unknown_name",
    )
    assert "did you mean 'optimizer'" in msg


def test_when_names_itself() -> None:
    msg = only(
        {"optimizer": {**OPT, "when": {"optimizer": ["sgd"]}}},
        ("optimizer", "when", "optimizer"),
        "when_self",
    )
    assert "itself" in msg


def test_when_impossible_value_of_a_dimension() -> None:
    msg = only(
        {
            "optimizer": OPT,
            "momentum": {"type": "fixed", "value": 0.9, "when": {"optimizer": ["sgd", "rmsprop"]}},
        },
        ("momentum", "when", "optimizer", 1),
        "impossible_condition",
    )
    assert "'optimizer' never takes 'rmsprop'" in msg


def test_when_value_outside_the_vocabulary() -> None:
    msg = only(
        {
            "optimizer": OPT,
            "momentum": {"type": "fixed", "value": 0.9, "when": {"optimizer": ["sgdd"]}},
        },
        ("momentum", "when", "optimizer", 0),
        "impossible_condition",
    )
    assert "'sgdd'" in msg


def test_when_impossible_for_numeric_and_fixed_parents() -> None:
    base: dict[str, Any] = {
        "conv_blocks": {"type": "int", "low": 1, "high": 3},
        "batch_norm": {"type": "fixed", "value": True},
    }
    only(
        {**base, "filters": {"type": "fixed", "value": 32, "when": {"conv_blocks": [2, 4]}}},
        ("filters", "when", "conv_blocks", 1),
        "impossible_condition",
    )
    only(
        {**base, "filters": {"type": "fixed", "value": 32, "when": {"batch_norm": [False]}}},
        ("filters", "when", "batch_norm", 0),
        "impossible_condition",
    )
    only(
        {**base, "filters": {"type": "fixed", "value": 32, "when": {"conv_blocks": ["2"]}}},
        ("filters", "when", "conv_blocks", 0),
        "impossible_condition",
    )
    assert (
        validate_space(
            {**base, "filters": {"type": "fixed", "value": 32, "when": {"conv_blocks": [2, 3]}}}
        )
        == []
    )


def test_when_on_a_hyperparameter_outside_the_space() -> None:
    # The documented example: momentum only for sgd/rmsprop, optimizer not tuned. Accepted;
    # optimizer keeps its default (adam), so momentum stays inactive at its default.
    space = {"momentum": {"type": "float", "low": 0.0, "high": 0.99,
                          "when": {"optimizer": ["sgd", "rmsprop"]}}}
    assert validate_space(space) == []
    assert parse_space(space).resolve({"momentum": 0.5})["momentum"] == 0.0
    # a value the hyperparameter can never take is still impossible
    msg = only(
        {"momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": ["sgdx"]}}},
        ("momentum", "when", "optimizer", 0),
        "impossible_condition",
    )
    assert "sgdx" in msg


def test_conditional_parent_can_take_its_default() -> None:
    # optimizer is only sampled for conv_blocks 0, otherwise it is its default 'adam':
    raw = {
        "conv_blocks": {"type": "int", "low": 0, "high": 2},
        "optimizer": {
            "type": "categorical",
            "choices": ["sgd", "rmsprop"],
            "when": {"conv_blocks": [0]},
        },
        "beta_1": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": ["adam"]}},
    }
    assert validate_space(raw) == []


def test_cycle_is_reported_with_the_cycle() -> None:
    raw = {
        "optimizer": {
            "type": "categorical",
            "choices": ["adam", "sgd"],
            "when": {"batch_norm": [True]},
        },
        "batch_norm": {
            "type": "categorical",
            "choices": [True, False],
            "when": {"optimizer": ["sgd"]},
        },
    }
    msg = only(raw, ("batch_norm", "when"), "condition_cycle")
    assert "batch_norm -> optimizer -> batch_norm" in msg


def test_three_way_cycle() -> None:
    raw = {
        "conv_blocks": {"type": "int", "low": 1, "high": 3, "when": {"head": ["gap"]}},
        "head": {"type": "categorical", "choices": ["gap", "flatten"], "when": {"filters": [32]}},
        "filters": {"type": "categorical", "choices": [32, 64], "when": {"conv_blocks": [1]}},
    }
    msg = only(raw, ("conv_blocks", "when"), "condition_cycle")
    assert "conv_blocks -> head -> filters -> conv_blocks" in msg


def test_every_problem_is_reported() -> None:
    raw = {
        "learning_rat": {"type": "float", "low": 1e-4, "high": 1e-1},
        "activation": {"type": "float", "low": 0, "high": 1},
        "conv_blocks": {"type": "int", "low": 1.5, "high": "4", "bogus": 1},
        "dropout": {"type": "float", "low": 0.6, "high": 0.2},
        "filters": {"type": "int", "low": 8, "high": 30, "step": 8},
        "regularization": {"type": "float", "low": 0.0, "high": 0.1, "log": True, "step": 0.01},
        "optimizer": {"type": "categorical", "choices": ["adam", "adam", "nope"]},
        "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"lr_schedule": ["cosin"]}},
    }
    problems = validate_space(raw)
    found = {(p.path, p.code) for p in problems}
    assert found == {
        (("learning_rat",), "unknown_name"),
        (("activation", "type"), "incompatible_type"),
        (("conv_blocks", "bogus"), "unknown_key"),
        (("conv_blocks", "low"), "wrong_type"),
        (("conv_blocks", "high"), "wrong_type"),
        (("dropout", "low"), "low_not_below_high"),
        (("filters", "step"), "step_not_dividing"),
        (("regularization", "low"), "log_needs_positive_low"),
        (("regularization", "step"), "log_with_step"),
        (("optimizer", "choices", 1), "duplicate_choice"),
        (("optimizer", "choices", 2), "invalid_choice"),
        (("momentum", "when", "lr_schedule", 0), "impossible_condition"),
    }
    assert all(isinstance(p, Problem) and p.message for p in problems)
    with pytest.raises(SearchSpaceError) as info:
        parse_space(raw)
    assert info.value.problems == problems
    assert "learning_rat: unknown hyperparameter" in str(info.value)
