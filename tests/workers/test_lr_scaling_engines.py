"""``lr_scaling`` in every engine: the optimizer the trial trains with gets the effective
learning rate (learning_rate x f(batch_size / lr_reference_batch_size)), and the trial records
it as the ``effective_learning_rate`` user attribute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from support import TINY_SPACE, tiny_spec

from search_spaces.vocabulary import with_defaults
from tuner_service.service import Services
from tuner_service.spec import DatasetSpec, StudySpec
from workers.datasets import load_dataset
from workers.engines.grid_engine import estimator_params, make_estimator
from workers.model_builder import build_optimizer
from workers.training import training_callbacks
from workers.trial_runner import TrialResult, run_trial
from workers.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow

SCALED = {  # 0.01 x 64/16 = 0.04 (linear); 0.01 x sqrt(4) = 0.02 (sqrt)
    "learning_rate": {"type": "fixed", "value": 0.01},
    "batch_size": {"type": "fixed", "value": 64},
    "lr_reference_batch_size": {"type": "fixed", "value": 16},
}
EXPECTED = {"none": 0.01, "linear": 0.04, "sqrt": 0.02}


def _space(kind: str) -> dict[str, Any]:
    return {**TINY_SPACE, **SCALED, "lr_scaling": {"type": "fixed", "value": kind}}


class _Recording(Worker):
    """Keeps the optimizer learning rate of every trained model."""

    seen: list[float] = []

    @staticmethod
    def _run(params: Mapping[str, Any], *args: Any, **kw: Any) -> TrialResult:
        result = run_trial(params, *args, **kw)
        assert result.model is not None
        _Recording.seen.append(float(result.model.optimizer.learning_rate))
        return result

    run_trial_fn = _run


def _run_study(services: Services, spec: dict[str, Any]) -> list[optuna.trial.FrozenTrial]:
    _Recording.seen = []
    services.create_study(spec)
    _Recording(services, WorkerOptions(exit_when_idle=0.5)).run()
    return optuna.load_study(study_name=str(spec["name"]), storage=services.storage).trials


@pytest.mark.parametrize("kind", ["none", "linear", "sqrt"])
def test_optuna_engine(services: Services, kind: str) -> None:
    trials = _run_study(services, tiny_spec(f"lr-{kind}", search_space=_space(kind),
                                            budget={"n_trials": 1, "max_epochs": 1}))
    assert _Recording.seen == [pytest.approx(EXPECTED[kind])]
    assert trials[0].user_attrs["effective_learning_rate"] == pytest.approx(EXPECTED[kind])


def test_keras_tuner_engine(services: Services) -> None:
    spec = tiny_spec("lr-kt", search_space=_space("linear"),
                     engine={"kind": "keras_tuner", "algorithm": "random"},
                     budget={"n_trials": 1, "max_epochs": 1})
    trials = _run_study(services, spec)
    assert _Recording.seen == [pytest.approx(0.04)]
    assert trials[0].user_attrs["effective_learning_rate"] == pytest.approx(0.04)


def test_sklearn_grid_engine(services: Services) -> None:
    space = {**_space("sqrt"), "dense_units": {"type": "categorical", "choices": [8]},
             "filters": {"type": "categorical", "choices": [4]}}
    spec = tiny_spec("lr-grid", search_space=space,
                     engine={"kind": "sklearn_grid", "cv": 2, "scoring": "accuracy"},
                     budget={"n_trials": 1, "max_epochs": 1})
    trials = _run_study(services, spec)
    assert trials[0].user_attrs["effective_learning_rate"] == pytest.approx(0.02)
    # the estimator each fold fits compiles scikeras' optimizer with the effective rate
    parsed = StudySpec.model_validate(spec)
    sk = estimator_params(parsed, trials[0].user_attrs["full_params"])
    assert sk["optimizer__learning_rate"] == pytest.approx(0.02)
    data = load_dataset(DatasetSpec.model_validate(spec["dataset"]))
    est = make_estimator(epochs=1, seed=0, **sk).fit(data.x_train, data.y_train)
    assert float(est.model_.optimizer.learning_rate) == pytest.approx(0.02)


def test_schedules_start_from_the_effective_rate() -> None:
    params = with_defaults({"learning_rate": 0.01, "batch_size": 64, "lr_scaling": "linear",
                            "lr_reference_batch_size": 16, "lr_schedule": "cosine"})
    assert float(build_optimizer(params).learning_rate) == pytest.approx(0.04)
    sched = next(c for c in training_callbacks(params, max_epochs=4) if hasattr(c, "schedule"))
    assert sched.schedule(0) == pytest.approx(0.04)
    plateau = with_defaults({**params, "lr_schedule": "reduce_on_plateau"})
    cb = next(c for c in training_callbacks(plateau, max_epochs=4) if hasattr(c, "min_lr"))
    assert cb.min_lr == pytest.approx(0.04e-3)
