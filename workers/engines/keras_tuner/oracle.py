"""The Keras Tuner oracle kept in the service database: built from the study spec, loaded from
and dumped to JSON state, and reconciled with the leases that are still active."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from search_spaces import SearchSpace
from tuner_service.engines.keras_tuner import KerasTunerEngineSpec
from tuner_service.spec import StudySpec

from ...kt_space import to_keras_tuner
from ...trial_runner import monitored_metric
from ..base import EngineFatalError
from . import internals

if TYPE_CHECKING:
    import keras_tuner

log = logging.getLogger(__name__)

KIND = "keras_tuner"
ATTR_KT_TRIAL_ID = "kt_trial_id"
ATTR_KT_VALUES = "kt_values"  # tuner/epochs, tuner/initial_epoch, tuner/trial_id, ...
ATTR_KT_WEIGHTS = "kt_weights_artifact_id"

RUNNING, IDLE, STOPPED = "RUNNING", "IDLE", "STOPPED"


def _plain(v: Any) -> Any:
    item = getattr(v, "item", None)
    if callable(item):
        return item()
    if isinstance(v, (set, tuple)):
        return list(v)
    raise TypeError(f"cannot store {type(v).__name__} in the oracle state")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_plain))


def _tuner_id(lease_id: int) -> str:
    return f"lease-{lease_id}"


def _lease_of(tuner_id: str) -> int | None:
    prefix, _, rest = tuner_id.partition("-")
    return int(rest) if prefix == "lease" and rest.isdigit() else None


def build_oracle(spec: StudySpec, space: SearchSpace) -> keras_tuner.Oracle:
    """A fresh oracle for the study (no trials yet), doing no file I/O and printing nothing."""
    import keras_tuner as kt

    engine = spec.engine
    assert isinstance(engine, KerasTunerEngineSpec)
    metric, mode = monitored_metric(spec.objectives)
    common: dict[str, Any] = {
        "objective": kt.Objective(metric, direction=mode),
        "hyperparameters": to_keras_tuner(space),
        "seed": spec.seed,
        **engine.options,
    }
    n = spec.budget.n_trials
    try:
        if engine.algorithm == "random":
            oracle = kt.oracles.RandomSearchOracle(max_trials=n, **common)
        elif engine.algorithm == "bayesian":
            oracle = kt.oracles.BayesianOptimizationOracle(max_trials=n, **common)
        elif engine.algorithm == "hyperband":
            oracle = kt.oracles.HyperbandOracle(max_epochs=spec.budget.max_epochs, **common)
        else:
            oracle = kt.oracles.GridSearchOracle(max_trials=n, **common)
    except (TypeError, ValueError) as exc:
        raise EngineFatalError(f"keras_tuner {engine.algorithm} oracle: {exc}") from exc
    internals.silence(oracle)  # the state goes to the database, not to files
    return oracle


def _load(oracle: Any, state: Mapping[str, Any]) -> None:
    oracle.trials = {
        tid: internals.trial_from_state(ts) for tid, ts in state["trials"].items()
    }
    oracle.set_state(state["oracle"])
    grid = state.get("grid")
    if grid is not None:  # GridSearchOracle keeps its position outside get_state()
        internals.load_grid_state(oracle, grid)


def _dump(oracle: Any, book: dict[str, Any]) -> dict[str, Any]:
    oracle_state = oracle.get_state()
    # Keras Tuner dumps its ``tried_so_far`` set as a list in set order, which depends on the
    # process's string hashing: sorted, the same oracle always dumps the same state.
    if isinstance(oracle_state.get("tried_so_far"), list):
        oracle_state["tried_so_far"] = sorted(oracle_state["tried_so_far"])
    state: dict[str, Any] = {
        "oracle": oracle_state,
        "trials": {tid: t.get_state() for tid, t in oracle.trials.items()},
        "book": book,
    }
    grid = internals.grid_state(oracle)
    if grid is not None:
        state["grid"] = grid
    return _jsonable(state)


@contextlib.contextmanager
def _oracle_from(spec: StudySpec, space: SearchSpace, state: Mapping[str, Any] | None
                 ) -> Iterator[tuple[Any, dict[str, Any]]]:
    oracle = build_oracle(spec, space)
    try:
        book: dict[str, Any] = {"runs": {}, "lost": {}}
        if state is not None:
            _load(oracle, state)
            book = json.loads(json.dumps(state.get("book", book)))
        yield oracle, book
    finally:
        internals.release(oracle)


def _reconcile(oracle: Any, book: dict[str, Any], active: frozenset[int], max_retries: int
               ) -> list[int]:
    """Hand back the ongoing trials whose lease is no longer active; returns the leases of
    trials that failed for good (their lease then counts as finished)."""
    status = internals.trial_status()
    gave_up: list[int] = []
    for tuner_id, trial in list(oracle.ongoing_trials.items()):
        lease_id = _lease_of(tuner_id)
        if lease_id is None or lease_id in active:
            continue
        lost = book["lost"].get(trial.trial_id, 0) + 1
        book["lost"][trial.trial_id] = lost
        if lost <= max_retries:
            oracle.ongoing_trials.pop(tuner_id)
            internals.hand_back(oracle, trial.trial_id)
            log.warning("keras tuner trial %s: worker lost; retry %d", trial.trial_id, lost)
        else:
            trial.status = status.FAILED
            trial.message = f"worker lost {lost} times"
            try:
                oracle.end_trial(trial)
            except RuntimeError as exc:  # too many consecutive failures: the search stops
                raise EngineFatalError(f"keras tuner: {exc}") from exc
            gave_up.append(lease_id)
    return gave_up


def _plain_value(v: Any) -> Any:
    item = getattr(v, "item", None)
    return item() if callable(item) else v
