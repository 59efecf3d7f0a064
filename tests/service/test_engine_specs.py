"""Submit-time checks of the keras_tuner and sklearn_grid engines (no TensorFlow needed)."""

from __future__ import annotations

import pytest
from support import TINY_SPACE, tiny_spec

from tuner_service.errors import SpecError
from tuner_service.spec import parse_study_spec


def paths(raw: dict[str, object]) -> list[tuple[str | int, ...]]:
    with pytest.raises(SpecError) as e:
        parse_study_spec(raw)
    return [p.path for p in e.value.problems]


def test_keras_tuner_specs() -> None:
    ok = parse_study_spec(tiny_spec(engine={"kind": "keras_tuner", "algorithm": "hyperband",
                                            "options": {"factor": 3}}))
    assert ok.engine.kind == "keras_tuner"
    assert ("engine", "options", "factr") in paths(
        tiny_spec(engine={"kind": "keras_tuner", "algorithm": "hyperband",
                          "options": {"factr": 3}}))
    assert ("engine", "options", "factor") in paths(
        tiny_spec(engine={"kind": "keras_tuner", "algorithm": "hyperband",
                          "options": {"factor": 1}}))
    assert ("engine", "options", "alpha") in paths(
        tiny_spec(engine={"kind": "keras_tuner", "algorithm": "random",
                          "options": {"alpha": 1e-4}}))
    bad_algo = paths(tiny_spec(engine={"kind": "keras_tuner", "algorithm": "tpe"}))
    assert any(p[:2] == ("engine", "keras_tuner") for p in bad_algo)
    assert ("objective",) in paths(
        tiny_spec(engine={"kind": "keras_tuner"},
                  objective=[{"metric": "val_accuracy"}, {"metric": "params"}]))
    # grid needs an enumerable space (learning_rate is a log float here)
    assert ("search_space", "learning_rate") in paths(
        tiny_spec(engine={"kind": "keras_tuner", "algorithm": "grid"}))


def test_sklearn_grid_specs() -> None:
    space = {**TINY_SPACE, "learning_rate": {"type": "categorical", "choices": [0.01, 0.1]}}
    ok = parse_study_spec(tiny_spec(engine={"kind": "sklearn_grid"}, search_space=space,
                                    budget={"n_trials": 8}))
    assert ok.engine.kind == "sklearn_grid" and ok.space().grid_size() == 8
    assert ("budget", "n_trials") in paths(
        tiny_spec(engine={"kind": "sklearn_grid"}, search_space=space, budget={"n_trials": 9}))
    assert ("engine", "scoring") in paths(
        tiny_spec(engine={"kind": "sklearn_grid", "scoring": "acuracy"}, search_space=space,
                  budget={"n_trials": 2}))
    assert ("objective", "direction") in paths(
        tiny_spec(engine={"kind": "sklearn_grid"}, search_space=space, budget={"n_trials": 2},
                  objective={"metric": "val_loss"}))
    assert any(p[0] == "engine" for p in paths(
        tiny_spec(engine={"kind": "sklearn_grid", "cv": 1}, search_space=space)))
