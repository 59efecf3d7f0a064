"""The Keras Tuner oracle of every algorithm survives the database: each round rebuilds it
from the stored JSON state, creates the next trial, ends it, and stores the state again
(as workers do, each in its own transaction). And the private Keras Tuner fields the engine
uses are all where workers/engines/keras_tuner/internals.py expects them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import tiny_spec

from tuner_service.spec import parse_study_spec
from workers.engines.keras_tuner import internals
from workers.engines.keras_tuner.oracle import _dump, _oracle_from, _tuner_id, build_oracle

ALGORITHMS = ["random", "bayesian", "hyperband", "grid"]
SPACE = {
    "conv_blocks": {"type": "fixed", "value": 1},
    "filters": {"type": "categorical", "choices": [4, 8, 16]},
    "dense_units": {"type": "categorical", "choices": [8, 16]},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
}
OPTIONS = {"hyperband": {"factor": 3}, "bayesian": {"num_initial_points": 3}}
GRID_SPACE = {**SPACE, "learning_rate": {"type": "categorical", "choices": [0.01, 0.1]}}


def _spec(algorithm: str, n_trials: int) -> Any:
    return parse_study_spec(tiny_spec(
        f"kt-{algorithm}",
        engine={"kind": "keras_tuner", "algorithm": algorithm,
                "options": OPTIONS.get(algorithm, {})},
        budget={"n_trials": n_trials, "max_epochs": 3, "max_parallel": 1},
        search_space=GRID_SPACE if algorithm == "grid" else SPACE, seed=5))


def _round(spec: Any, state: dict[str, Any] | None, lease: int, score: float
           ) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """Load, create the next trial, end it with ``score``, dump: (state, status, values)."""
    with _oracle_from(spec, spec.space(), state) as (oracle, book):
        trial = oracle.create_trial(_tuner_id(lease))
        status, values = str(trial.status), None
        if status == "RUNNING":
            values = dict(trial.hyperparameters.values)
            oracle.update_trial(trial.trial_id, {"val_accuracy": score}, step=0)
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        new_state = _dump(oracle, book)
    return json.loads(json.dumps(new_state)), status, values


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_save_load_create_next_trial(algorithm: str) -> None:
    n = 8
    spec = _spec(algorithm, n)
    state: dict[str, Any] | None = None
    seen: list[dict[str, Any]] = []
    for lease in range(1, n + 1):
        state, status, values = _round(spec, state, lease, score=lease / 10)
        if status == "STOPPED":
            break
        assert status == "RUNNING", (algorithm, lease, status)
        assert values is not None
        seen.append(values)
    ids = list(state["trials"]) if state else []
    assert len(ids) == len(set(ids)) == len(seen)  # every round a new Keras Tuner trial
    assert all(t["status"] == "COMPLETED" for t in state["trials"].values())  # type: ignore[index]
    if algorithm == "grid":  # 3 x 2 x 2 points, each once, in the order of the grid
        points = [tuple(sorted(v.items())) for v in seen]
        assert len(points) == len(set(points)) == 8
    if algorithm == "bayesian":  # past its random start, the Gaussian process proposed trials
        assert len(seen) > OPTIONS["bayesian"]["num_initial_points"]
    if algorithm == "hyperband":  # brackets continue earlier trials from their epochs
        assert any("tuner/trial_id" in v for v in seen)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_state_is_the_same_after_a_round_trip(algorithm: str) -> None:
    spec = _spec(algorithm, 4)
    state, _, _ = _round(spec, None, 1, 0.5)
    state, _, _ = _round(spec, state, 2, 0.7)
    with _oracle_from(spec, spec.space(), state) as (oracle, book):
        again = json.loads(json.dumps(_dump(oracle, book)))
    assert again == state


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_private_keras_tuner_fields_are_where_the_engine_expects_them(algorithm: str) -> None:
    oracle = build_oracle(_spec(algorithm, 4), _spec(algorithm, 4).space())
    try:
        missing = internals.missing_private_fields(oracle)
        assert not missing, (
            f"Keras Tuner moved private fields the engine relies on: {missing}; update "
            "workers/engines/keras_tuner/internals.py and the keras-tuner pin in pyproject.toml")
    finally:
        internals.release(oracle)
