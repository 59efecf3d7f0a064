"""The sklearn_grid engine: the service's grid results equal a direct ``GridSearchCV`` in the
same process (parity with the seed notebook), and the grid study is a plain Optuna study."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from tuner_service.service import Services
from tuner_service.spec import DatasetSpec
from workers.datasets import load_dataset
from workers.engines.grid_engine import cv_data, make_estimator
from workers.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow

SEED = 7
EPOCHS = 2
SPACE = {  # the seed's MLP, a reduced grid: 2 x 2 points
    "conv_blocks": {"type": "fixed", "value": 0},
    "dense_layers": {"type": "fixed", "value": 1},
    "dropout": {"type": "fixed", "value": 0.0},
    "early_stopping_patience": {"type": "fixed", "value": 0},
    "dense_units": {"type": "categorical", "choices": [8, 16]},
    "activation": {"type": "categorical", "choices": ["relu"]},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "learning_rate": {"type": "categorical", "choices": [0.05]},
    "batch_size": {"type": "categorical", "choices": [32]},
}
DATASET = {"name": "breast_cancer", "validation_split": 0.2, "test_split": 0.2, "seed": 0}


def grid_spec(name: str) -> dict[str, object]:
    return {
        "name": name,
        "dataset": DATASET,
        "engine": {"kind": "sklearn_grid", "cv": 3, "scoring": "accuracy"},
        "budget": {"n_trials": 4, "max_epochs": EPOCHS, "max_parallel": 1},
        "search_space": SPACE,
        "seed": SEED,
    }


def test_grid_equals_direct_gridsearchcv(services: Services, sqlite_url: str) -> None:
    from sklearn.model_selection import GridSearchCV

    row = services.create_study(grid_spec("grid-parity"))
    Worker(services, WorkerOptions(exit_when_idle=0.5)).run()
    detail = services.study_detail(row.id)
    assert detail["status"] == "completed", detail
    result = services.grid(row.id)
    assert result["complete"] and result["n_finished"] == 4

    # The seed's way: KerasClassifier + param_grid in scikeras names + GridSearchCV(cv=3).
    x, y = cv_data(load_dataset(DatasetSpec.model_validate(DATASET)))
    estimator = make_estimator(
        epochs=EPOCHS, seed=SEED, model__conv_blocks=0, model__dense_layers=1,
        model__dropout=0.0, model__early_stopping_patience=0, model__activation="relu",
    )
    param_grid = {
        "model__dense_units": [8, 16],
        "optimizer": ["adam", "sgd"],
        "optimizer__learning_rate": [0.05],
        "batch_size": [32],
    }
    direct = GridSearchCV(estimator, param_grid, cv=3, scoring="accuracy").fit(x, y)

    ours = result["cv_results_"]
    theirs = direct.cv_results_
    for i, params in enumerate(theirs["params"]):
        j = next(k for k, p in enumerate(ours["params"])
                 if all(p[n] == v for n, v in params.items()))
        assert j == i  # same candidate order (ParameterGrid's)
        assert ours["mean_test_score"][j] == pytest.approx(theirs["mean_test_score"][i], abs=1e-6)
        assert ours["std_test_score"][j] == pytest.approx(theirs["std_test_score"][i], abs=1e-6)
        assert ours["rank_test_score"][j] == theirs["rank_test_score"][i]
        for f in range(3):
            assert ours[f"split{f}_test_score"][j] == pytest.approx(
                theirs[f"split{f}_test_score"][i], abs=1e-6)
    assert {k: result["best_params_"][k] for k in direct.best_params_} == direct.best_params_
    assert result["best_score_"] == pytest.approx(direct.best_score_, abs=1e-6)

    # plain Optuna reads every grid point: params, one intermediate value per fold, the mean
    study = optuna.load_study(study_name="grid-parity", storage=sqlite_url)
    assert len(study.trials) == 4
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        assert {"dense_units", "optimizer"} <= set(t.params)
        assert sorted(t.intermediate_values) == [0, 1, 2]
        assert math.isclose(t.value, sum(t.intermediate_values.values()) / 3, abs_tol=1e-9)

    # refit=True (GridSearchCV's default, ours too): the best point fitted again on all the
    # data searched, scored on the test split -- the same score as GridSearchCV's
    # best_estimator_; the refitted model is the study's exported model
    data = load_dataset(DatasetSpec.model_validate(DATASET))
    their_test = direct.score(data.x_test, data.y_test)  # the "accuracy" scorer
    assert result["test_score"] == pytest.approx(their_test, abs=1e-6)
    assert result["refit_time_"] > 0
    assert detail["evaluation"]["test_metrics"]["test_accuracy"] == result["test_score"]
    best = services.best(row.id)
    assert best["test_metrics"] == {"test_accuracy": result["test_score"]}
    name, blob = services.best_model(row.id)
    assert name.endswith(".keras") and len(blob) > 1000


def test_grid_without_refit_keeps_scores_only(services: Services) -> None:
    spec = grid_spec("grid-norefit")
    spec["engine"] = {"kind": "sklearn_grid", "cv": 2, "scoring": "accuracy", "refit": False}
    spec["budget"] = {"n_trials": 1, "max_epochs": 1}
    row = services.create_study(spec)
    Worker(services, WorkerOptions(exit_when_idle=0.5)).run()
    assert services.study_detail(row.id)["evaluation"]["skipped"]
    assert "refit_time_" not in services.grid(row.id)


def test_grid_spec_is_checked(services: Services) -> None:
    from tuner_service.errors import SpecError

    bad = grid_spec("grid-bad")
    bad["search_space"] = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1,
                                             "log": True}}
    bad["budget"] = {"n_trials": 1}
    with pytest.raises(SpecError) as e:
        services.create_study(bad)
    assert ("search_space", "learning_rate") in [p.path for p in e.value.problems]
    too_many = grid_spec("grid-big")
    too_many["budget"] = {"n_trials": 5}
    with pytest.raises(SpecError) as e:
        services.create_study(too_many)
    assert ("budget", "n_trials") in [p.path for p in e.value.problems]
