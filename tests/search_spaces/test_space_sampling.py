"""Sampling with real Optuna trials, conditions, and resolve."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from search_spaces import DEFAULTS, VOCABULARY, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

RAW: dict[str, Any] = {
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
    "momentum": {
        "type": "float",
        "low": 0.0,
        "high": 0.9,
        "when": {"optimizer": ["sgd", "rmsprop"]},
    },
    "beta_1": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": ["adam"]}},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "dense_units": {"type": "int", "low": 32, "high": 256, "step": 32},
    "filters": {"type": "int", "low": 8, "high": 128, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    "batch_norm": {"type": "fixed", "value": False},
    "residual": {"type": "categorical", "choices": [True, False]},
}


def _sample(space_raw: dict[str, Any], n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    space = parse_space(space_raw)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        params = space.sample(trial)
        out.append((dict(trial.params), params))
        study.tell(trial, 0.0)
    return out


def test_sample_returns_the_full_parameter_set() -> None:
    for _, params in _sample(RAW, 10):
        assert set(params) == set(VOCABULARY)
        for name in set(VOCABULARY) - set(RAW):
            assert params[name] == DEFAULTS[name]


def test_conditional_suggested_only_when_its_condition_holds() -> None:
    seen = set()
    for suggested, params in _sample(RAW, 40):
        seen.add(params["optimizer"])
        if params["optimizer"] in ("sgd", "rmsprop"):
            assert "momentum" in suggested and "beta_1" not in suggested
            assert params["beta_1"] == DEFAULTS["beta_1"]
            assert 0.0 <= params["momentum"] <= 0.9
        else:
            assert "beta_1" in suggested and "momentum" not in suggested
            assert params["momentum"] == DEFAULTS["momentum"]
    assert seen == {"adam", "sgd", "rmsprop"}


def test_fixed_is_never_suggested() -> None:
    for suggested, params in _sample(RAW, 5):
        assert "batch_norm" not in suggested
        assert params["batch_norm"] is False
        assert set(suggested) <= set(RAW) - {"batch_norm"}


def test_values_lie_in_their_dimensions() -> None:
    for _, params in _sample(RAW, 30):
        assert params["dense_units"] % 32 == 0 and 32 <= params["dense_units"] <= 256
        assert isinstance(params["filters"], int) and 8 <= params["filters"] <= 128
        assert 1e-4 <= params["learning_rate"] <= 1e-1
        assert round(params["dropout"] * 10, 6) == round(params["dropout"] * 10)
        assert isinstance(params["residual"], bool)


def test_seeded_sampler_is_reproducible() -> None:
    def run() -> list[dict[str, Any]]:
        space = parse_space(RAW)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=42))
        results = []
        for i in range(12):
            trial = study.ask()
            results.append(space.sample(trial))
            study.tell(trial, float(i % 3))
        return results

    assert run() == run()


def test_conditions_chain_through_inactive_parents() -> None:
    # optimizer is sampled only for conv_blocks 0; beta_1 only when optimizer is adam, which is
    # also the case when optimizer is inactive (it is then its default, adam).
    raw = {
        "conv_blocks": {"type": "int", "low": 0, "high": 1},
        "optimizer": {
            "type": "categorical",
            "choices": ["sgd", "rmsprop"],
            "when": {"conv_blocks": [0]},
        },
        "beta_1": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": ["adam"]}},
    }
    for suggested, params in _sample(raw, 20):
        if params["conv_blocks"] == 0:
            assert "optimizer" in suggested and "beta_1" not in suggested
        else:
            assert "optimizer" not in suggested and params["optimizer"] == "adam"
            assert "beta_1" in suggested


def test_conditions_on_fixed_and_absent_hyperparameters() -> None:
    raw = {
        "optimizer": {"type": "fixed", "value": "sgd"},
        "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
        "beta_1": {"type": "float", "low": 0.8, "high": 0.9, "when": {"lr_schedule": ["constant"]}},
    }
    for suggested, _ in _sample(raw, 3):
        assert set(suggested) == {"momentum", "beta_1"}


def test_multiple_conditions_must_all_hold() -> None:
    raw = {
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "lr_schedule": {"type": "categorical", "choices": ["constant", "cosine"]},
        "momentum": {
            "type": "float",
            "low": 0.0,
            "high": 0.9,
            "when": {"optimizer": ["sgd"], "lr_schedule": ["cosine"]},
        },
    }
    for suggested, params in _sample(raw, 40):
        active = params["optimizer"] == "sgd" and params["lr_schedule"] == "cosine"
        assert ("momentum" in suggested) == active


def test_resolve_fills_defaults_and_resets_inactive() -> None:
    space = parse_space(RAW)
    full = space.resolve({"optimizer": "adam", "momentum": 0.5, "dropout": 0.2})
    assert set(full) == set(VOCABULARY)
    assert full["momentum"] == DEFAULTS["momentum"]  # inactive: reset
    assert full["dropout"] == 0.2
    assert full["batch_norm"] is False  # fixed
    assert full["beta_1"] == DEFAULTS["beta_1"]  # active but missing: default
    full = space.resolve({"optimizer": "sgd", "momentum": 0.5})
    assert full["momentum"] == 0.5


def test_resolve_ignores_names_outside_the_space() -> None:
    space = parse_space(RAW)
    full = space.resolve({"kernel_size": 5, "not_a_name": 1})
    assert full["kernel_size"] == DEFAULTS["kernel_size"]
    assert "not_a_name" not in full


def test_resolve_gives_floats_for_float_hyperparameters() -> None:
    space = parse_space({"learning_rate": {"type": "categorical", "choices": [1, 2]}})
    value = space.resolve({"learning_rate": 1})["learning_rate"]
    assert value == 1.0 and isinstance(value, float)


def test_active_names() -> None:
    space = parse_space(RAW)
    names = space.active_names({"optimizer": "sgd"})
    assert "momentum" in names and "beta_1" not in names


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_params_validate(seed: int) -> None:
    space = parse_space(RAW)
    for suggested, _ in _sample(RAW, 10, seed=seed):
        assert space.validate_params(suggested) == []
