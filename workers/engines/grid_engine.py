"""The ``sklearn_grid`` engine: each lease is one grid point, cross-validated with scikeras'
``KerasClassifier`` the way ``GridSearchCV(estimator, param_grid, cv=..., scoring=...)`` does
it.

The points were queued as WAITING Optuna trials when the study was created
(:mod:`tuner_service.engines.sklearn_grid`); ``study.ask()`` hands each to exactly one worker,
and a point whose worker was lost is re-queued by the reaper like any Optuna trial. For each
point, every fold is fitted on a fresh clone of the estimator and scored with the study's
scorer, on the splits of ``check_cv(cv, y, classifier=True)`` -- what ``GridSearchCV`` uses --
over the training and validation parts of the dataset together (the test part stays for the
final evaluation). The Optuna trial's value is the mean test score; each fold's score is an
intermediate value (step = fold) and the fold scores and times are user attributes.

The estimator: ``KerasClassifier(model=scikeras_model, random_state=study seed, epochs=
budget.max_epochs, verbose=0, **params)`` with the vocabulary under scikeras names
(:mod:`search_spaces.scikeras`): the model comes from the service's builder
(:func:`workers.model_builder.build_model`) and is compiled with the optimizer scikeras makes
from ``optimizer`` / ``optimizer__*`` (as in the seed notebook). With the same seed, a direct
``GridSearchCV`` over :func:`make_estimator` gives the same scores (tests/workers/test_grid.py)."""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import optuna

from search_spaces.scikeras import to_scikeras_params
from search_spaces.vocabulary import effective_learning_rate, with_defaults
from tuner_service.engines.sklearn_grid import (
    ATTR_FIT_TIMES,
    ATTR_FOLD_SCORES,
    ATTR_SCORE_TIMES,
    SklearnGridEngineSpec,
    grid_names,
)
from tuner_service.optuna_bridge import (
    ATTR_EFFECTIVE_LR,
    ATTR_PARAMS_FULL,
    ATTR_SEED,
    ATTR_WORKER,
)
from tuner_service.queue import Claim
from tuner_service.retrying import trial_id_of
from tuner_service.service import Services
from tuner_service.spec import StudySpec

from ..model_builder import build_model
from ..runtime import clear_session
from ..trial_runner import Outcome, TrialResult
from .base import TrialHandle, WorkerEngine
from .optuna_engine import OptunaTrialHandle

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial
    from scikeras.wrappers import KerasClassifier

    from ..datasets import Dataset
    from ..trial_context import TrialContext

log = logging.getLogger(__name__)


def scikeras_model(
    meta: dict[str, Any], compile_kwargs: dict[str, Any] | None = None, **params: Any
) -> keras.Model:
    """scikeras' model function: the service's builder on ``meta``'s input shape and classes,
    compiled with scikeras' optimizer. Keras' seeds are drawn from NumPy's generator, which
    scikeras seeds with ``random_state`` around every build and fit."""
    keras.utils.set_random_seed(int(np.random.randint(0, 2**31 - 1)))
    shape = tuple(int(d) for d in meta["X_shape_"][1:])
    model = build_model(params, shape, int(meta["n_classes_"]))
    if compile_kwargs and compile_kwargs.get("optimizer") is not None:
        model.compile(
            optimizer=compile_kwargs["optimizer"], loss=model.loss, metrics=["accuracy"]
        )
    return model


def make_estimator(*, epochs: int, seed: int | None, **params: Any) -> KerasClassifier:
    """The estimator a grid study cross-validates (``params`` in scikeras names)."""
    from scikeras.wrappers import KerasClassifier

    return KerasClassifier(
        model=scikeras_model, random_state=seed, epochs=epochs, verbose=0, **params
    )


def estimator_params(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """A grid point's full parameters in scikeras names: every dimension of the space plus the
    optimizer and its learning rate (so that unnamed ones keep the vocabulary's defaults); the
    learning rate is the effective one (scaled by ``lr_scaling``)."""
    full = with_defaults(params)
    full["learning_rate"] = effective_learning_rate(full)
    names = [d.name for d in spec.space().dimensions]
    names += [n for n in ("optimizer", "learning_rate") if n not in names]
    return to_scikeras_params(full, names)


def cv_data(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """What ``GridSearchCV.fit(X, y)`` gets: the training and validation parts together."""
    return (
        np.concatenate([dataset.x_train, dataset.x_val]),
        np.concatenate([dataset.y_train, dataset.y_val]),
    )


def refit(
    spec: StudySpec, dataset: Dataset, best_params: dict[str, Any]
) -> tuple[KerasClassifier, float, float | None]:
    """What ``GridSearchCV(refit=True)`` does after the search: a clone of the estimator with
    the best point's parameters, fitted on all the data searched. Returns the fitted
    estimator, ``refit_time_`` (seconds) and its test score (None without a test split)."""
    from sklearn.metrics import check_scoring

    engine = spec.engine
    assert isinstance(engine, SklearnGridEngineSpec)
    estimator = make_estimator(
        epochs=spec.budget.max_epochs, seed=spec.seed, **estimator_params(spec, best_params)
    )
    x, y = cv_data(dataset)
    started = time.perf_counter()
    estimator.fit(x, y)
    refit_time = time.perf_counter() - started
    test_score = None
    if len(dataset.y_test) > 0:
        scorer = check_scoring(estimator, scoring=engine.scoring)
        test_score = float(scorer(estimator, dataset.x_test, dataset.y_test))
    return estimator, refit_time, test_score


class SklearnGridEngine(WorkerEngine):
    def __init__(self, services: Services) -> None:
        self.services = services

    def final_model(
        self, study_name: str, spec: StudySpec, dataset: Dataset, best: FrozenTrial
    ) -> dict[str, Any] | None:
        """The refit (``engine.refit``, default true): the best point fitted again on
        training + validation data, scored on the test split, saved as an artifact of the
        Optuna study (the study's model: GET /studies/{id}/best/model exports it)."""
        engine = spec.engine
        assert isinstance(engine, SklearnGridEngineSpec)
        if not engine.refit:
            return None
        params = best.user_attrs.get(ATTR_PARAMS_FULL) or best.params
        estimator, refit_time, test_score = refit(spec, dataset, dict(params))
        study = optuna.load_study(study_name=study_name, storage=self.services.storage)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "refit.keras"
            estimator.model_.save(path)
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.services.artifacts,
                file_path=str(path),
                study_or_trial=study,
                mimetype="application/octet-stream",
            )
        clear_session()
        record: dict[str, Any] = {
            "trial_number": best.number,
            "refit": True,
            "refit_time_": refit_time,
            "test_score": test_score,
            "model_artifact_id": artifact_id,
        }
        if test_score is not None:
            record["test_metrics"] = {f"test_{engine.scoring}": test_score}
            record["test_samples"] = len(dataset.y_test)
        return record

    def start(
        self, claim: Claim, worker_id: str, stop: threading.Event | None = None
    ) -> OptunaTrialHandle:
        spec = StudySpec.model_validate(claim.study.spec)
        study = optuna.load_study(
            study_name=claim.study.name,
            storage=self.services.storage,
            sampler=optuna.samplers.RandomSampler(seed=spec.seed),
            pruner=optuna.pruners.NopPruner(),
        )
        trial = study.ask()  # pops the next queued grid point (one worker each)
        self.services.repo.attach_trial(
            claim.lease.id,
            trial_id=trial_id_of(trial),
            trial_number=trial.number,
            user_attr=(ATTR_WORKER, worker_id),
        )
        params = spec.space().sample(trial)
        return OptunaTrialHandle(
            self.services, study, trial, params, spec.seed or 0, multi=False
        )

    def run(self, handle: TrialHandle, ctx: TrialContext) -> TrialResult:
        """Cross-validate the grid point; its fold scores and times are recorded with the
        outcome, each fold's score is reported as an intermediate value."""
        from sklearn.base import clone, is_classifier
        from sklearn.metrics import check_scoring
        from sklearn.model_selection import check_cv

        spec = ctx.spec
        engine = spec.engine
        assert isinstance(engine, SklearnGridEngineSpec)
        sk_params = estimator_params(spec, handle.params)
        handle.set_attrs({
            ATTR_SEED: spec.seed,
            ATTR_PARAMS_FULL: handle.params,
            ATTR_EFFECTIVE_LR: effective_learning_rate(handle.params),
            "sklearn_params": to_scikeras_params(handle.params, grid_names(spec)),
        })
        prefix = f"study {ctx.study_id} grid point {handle.number}"
        log.info("%s: start %s", prefix, sk_params)
        x, y = cv_data(ctx.dataset)
        base = make_estimator(epochs=spec.budget.max_epochs, seed=spec.seed, **sk_params)
        scorer = check_scoring(base, scoring=engine.scoring)
        folds = list(check_cv(engine.cv, y, classifier=is_classifier(base)).split(x, y))
        scores: list[float] = []
        fit_times: list[float] = []
        score_times: list[float] = []
        ctx.record_attrs({ATTR_FOLD_SCORES: scores})  # what was scored, whatever the outcome
        try:
            for i, (train, test) in enumerate(folds):
                interrupted = ctx.interruption()
                if interrupted is not None:
                    return interrupted
                est = clone(base)
                t0 = time.perf_counter()
                est.fit(x[train], y[train])
                t1 = time.perf_counter()
                score = float(scorer(est, x[test], y[test]))
                fit_times.append(t1 - t0)
                score_times.append(time.perf_counter() - t1)
                scores.append(score)
                ctx.report(i, score)
                log.info("%s fold %d/%d %s=%.4f", prefix, i + 1, len(folds),
                         engine.scoring, score)
                clear_session()
        except Exception as exc:  # a point that cannot train fails; the worker goes on
            reason = f"{type(exc).__name__}: {exc}"
            return TrialResult(Outcome.FAILED, None, {}, 0, 0, sum(fit_times), reason=reason)
        finally:
            clear_session()
        mean = float(np.mean(scores))
        wall = sum(fit_times) + sum(score_times)
        ctx.record_attrs({
            ATTR_FIT_TIMES: fit_times,
            ATTR_SCORE_TIMES: score_times,
            "cv_std_test_score": float(statistics.pstdev(scores)),
            "wall_time_s": wall,
        })
        log.info("%s: mean %s=%.4f", prefix, engine.scoring, mean)
        return TrialResult(Outcome.COMPLETE, [mean], {}, 0, 0, wall)
