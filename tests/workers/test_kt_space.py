"""Search spaces as Keras Tuner HyperParameters (imports keras_tuner only, no training)."""

from __future__ import annotations

from typing import Any

import pytest

kt = pytest.importorskip("keras_tuner")

from search_spaces import DEFAULTS, VOCABULARY, parse_space  # noqa: E402
from search_spaces.presets import preset_names, preset_space  # noqa: E402
from workers.kt_space import params_from_keras_tuner, to_keras_tuner  # noqa: E402

RAW: dict[str, Any] = {
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
    "lr_schedule": {"type": "categorical", "choices": ["constant", "cosine"]},
    "momentum": {
        "type": "float",
        "low": 0.0,
        "high": 0.9,
        "when": {"optimizer": ["sgd", "rmsprop"]},
    },
    "label_smoothing": {
        "type": "float",
        "low": 0.0,
        "high": 0.2,
        "when": {"optimizer": ["sgd"], "lr_schedule": ["cosine"]},
    },
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    "dense_units": {"type": "int", "low": 32, "high": 512, "step": 32},
    "filters": {"type": "int", "low": 8, "high": 128, "log": True},
    "batch_norm": {"type": "categorical", "choices": [True, False]},
    "residual": {"type": "fixed", "value": True},
    "beta_1": {"type": "float", "low": 0.8, "high": 0.99, "when": {"head": ["gap"]}},
}


def _by_name(hp: Any) -> dict[str, Any]:
    return {p.name: p for p in hp.space}


def test_every_dimension_is_registered_with_its_type() -> None:
    hp = to_keras_tuner(parse_space(RAW))
    space = _by_name(hp)
    assert set(space) == set(RAW)
    lr = space["learning_rate"]
    assert isinstance(lr, kt.engine.hyperparameters.Float)
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-1, "log")
    dropout = space["dropout"]
    assert (dropout.step, dropout.sampling) == (0.1, "linear")
    units = space["dense_units"]
    assert isinstance(units, kt.engine.hyperparameters.Int)
    assert (units.min_value, units.max_value, units.step) == (32, 512, 32)
    assert space["filters"].sampling == "log"
    assert isinstance(space["optimizer"], kt.engine.hyperparameters.Choice)
    assert isinstance(space["batch_norm"], kt.engine.hyperparameters.Boolean)
    assert isinstance(space["residual"], kt.engine.hyperparameters.Fixed)


def test_defaults_are_the_vocabulary_defaults() -> None:
    hp = to_keras_tuner(parse_space(RAW))
    assert hp.values["optimizer"] == "adam"
    assert hp.values["learning_rate"] == DEFAULTS["learning_rate"]
    # 300 is not on the grid 32..512 by 32: Keras Tuner's own default (the low end) is used.
    assert hp.values["dense_units"] == 32
    assert hp.values["batch_norm"] is True
    assert hp.values["residual"] is True


def test_conditional_scope() -> None:
    hp = to_keras_tuner(parse_space(RAW))
    space = _by_name(hp)
    assert [c.name for c in space["momentum"].conditions] == ["optimizer"]
    assert [c.name for c in space["label_smoothing"].conditions] == ["optimizer", "lr_schedule"]
    # optimizer defaults to adam: momentum is inactive and has no value.
    assert not hp.is_active("momentum")
    assert "momentum" not in hp.values
    hp.values["optimizer"] = "sgd"
    assert hp.is_active("momentum")
    assert not hp.is_active("label_smoothing")
    hp.values["lr_schedule"] = "cosine"
    assert hp.is_active("label_smoothing")


def test_condition_on_a_hyperparameter_outside_the_space_is_static() -> None:
    hp = to_keras_tuner(parse_space(RAW))
    beta_1 = _by_name(hp)["beta_1"]
    assert beta_1.conditions == []  # head is always 'gap' (its default)
    assert hp.is_active("beta_1")


def test_oracle_samples_only_active_values() -> None:
    space = parse_space(RAW)
    hp = to_keras_tuner(space)
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("score", "max"), max_trials=50, hyperparameters=hp, seed=3
    )
    optimizers = set()
    for i in range(30):
        values = oracle.populate_space(f"t{i}")["values"]
        optimizers.add(values["optimizer"])
        assert ("momentum" in values) == (values["optimizer"] in ("sgd", "rmsprop"))
        both = values["optimizer"] == "sgd" and values["lr_schedule"] == "cosine"
        assert ("label_smoothing" in values) == both
        full = params_from_keras_tuner(space, values)
        assert set(full) == set(VOCABULARY)
        if "momentum" not in values:
            assert full["momentum"] == DEFAULTS["momentum"]
        assert full == space.resolve(values)
        assert space.validate_params(values) == []
    assert optimizers == {"adam", "sgd", "rmsprop"}


def test_params_from_keras_tuner_resets_inactive_and_converts_types() -> None:
    space = parse_space(RAW)
    full = params_from_keras_tuner(
        space, {"optimizer": "adam", "momentum": 0.5, "batch_norm": 0, "dense_units": 64.0}
    )
    assert full["momentum"] == DEFAULTS["momentum"]
    assert full["batch_norm"] is False
    assert full["dense_units"] == 64 and isinstance(full["dense_units"], int)
    assert full["residual"] is True


@pytest.mark.parametrize("name", preset_names())
def test_presets_convert(name: str) -> None:
    space = preset_space(name)
    hp = to_keras_tuner(space)
    assert {p.name for p in hp.space} == set(space.names)
    assert params_from_keras_tuner(space, hp.values) == space.resolve(hp.values)


def test_existing_hyperparameters_are_extended() -> None:
    hp = kt.HyperParameters()
    hp.Fixed("something_else", 1)
    to_keras_tuner(parse_space({"dropout": {"type": "float", "low": 0.0, "high": 0.5}}), hp)
    assert {p.name for p in hp.space} == {"something_else", "dropout"}
