"""The final evaluation of a completed study: the best trial's saved model, once, on the test
split. Any worker may do it; it holds the evaluation like a trial's lease (one holder at a
time; taken back by the reaper when the holder dies)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import keras
import optuna

from tuner_service.engines import get_engine
from tuner_service.models import StudyRow
from tuner_service.optuna_bridge import (
    ATTR_MODEL_ARTIFACT,
    ENSEMBLE_REQUEST,
    STUDY_ATTR_TEST_CLASSES,
)
from tuner_service.service import Services
from tuner_service.spec import StudySpec
from tuner_service.states import EvaluationState

from .class_metrics import per_class_summary, predicted_labels
from .datasets import DatasetCache
from .engines import engine_for
from .ensemble.build import build_study_ensemble
from .runtime import clear_session

log = logging.getLogger(__name__)


def load_trial_model(services: Services, artifact_id: str) -> keras.Model:
    data = services.repo.get_artifact(artifact_id)
    if data is None:
        raise LookupError(f"model artifact {artifact_id} is missing")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        return keras.models.load_model(path)


def evaluate_pending(services: Services, datasets: DatasetCache, worker_id: str) -> int:
    """Evaluate every completed study whose evaluation is pending (an indexed lookup, not a
    walk over every completed study); returns how many.

    Each evaluation is held like a trial's lease: taken by compare-and-set for this worker,
    which keeps it while its heartbeat runs; if the worker dies, the reaper gives it back and
    another worker redoes it. A result for an evaluation taken back meanwhile is dropped.
    """
    repo = services.repo
    n = 0
    for row in services.reads.pending_evaluations():
        previous = dict(row.evaluation or {})  # may hold an on-demand ensemble request
        if not repo.take_evaluation(row.id, worker_id):
            continue  # another worker took it
        target, evaluation = EvaluationState.DONE, {}
        try:
            spec = StudySpec.model_validate(row.spec)
            evaluation = _evaluate(services, datasets, row, spec)
            evaluation.update(_ensemble(services, datasets, row, spec, previous))
            log.info("study %s: best trial evaluated on the test split: %s", row.id, evaluation)
        except Exception as exc:  # the evaluation fails, the worker goes on
            log.exception("study %s: final evaluation failed", row.id)
            target, evaluation = EvaluationState.FAILED, {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            clear_session()
        if not repo.end_evaluation(row.id, worker_id, target, evaluation):
            log.warning("study %s: the evaluation was taken back meanwhile; result dropped",
                        row.id)
        n += 1
    return n


def _ensemble(
    services: Services,
    datasets: DatasetCache,
    row: StudyRow,
    spec: StudySpec,
    previous: dict[str, Any],
) -> dict[str, Any]:
    """``{"ensemble": record}`` when the study gets one (its spec's, or the size and method
    of an on-demand request), else nothing. A failed build is recorded, not raised."""
    request = previous.get(ENSEMBLE_REQUEST) or {}
    size = int(request.get("size", spec.ensemble.size))
    method = str(request.get("method", spec.ensemble.method))
    if size == 0 or spec.is_multi_objective or not get_engine(spec.engine.kind).keeps_model:
        return {}
    try:
        study = optuna.load_study(study_name=row.name, storage=services.storage)
        dataset = datasets.get(spec.dataset, services.settings.data_root)
        record = build_study_ensemble(
            services, study, dataset, size=size, method=method,
            load_model=lambda artifact_id: load_trial_model(services, artifact_id),
        )
    except Exception as exc:
        log.exception("study %s: the ensemble could not be built", row.id)
        record = {"error": f"{type(exc).__name__}: {exc}", "size": size, "method": method}
    return {"ensemble": record}


def _evaluate(services: Services, datasets: DatasetCache, row: StudyRow, spec: StudySpec) -> dict:
    if spec.is_multi_objective:
        return {"skipped": "several objectives: no single best model to evaluate"}
    best = services.reads.best(row.optuna_study_id)
    if not best:
        return {"skipped": "no trial completed"}
    trial = best[0]
    if not get_engine(spec.engine.kind).keeps_model:  # e.g. a grid: its refit, if any
        dataset = datasets.get(spec.dataset, services.settings.data_root)
        final = engine_for(spec.engine.kind, services).final_model(
            row.name, spec, dataset, trial
        )
        if final is not None:
            return final
        skipped = f"{spec.engine.kind} studies keep no model"
        return {"trial_number": trial.number, "skipped": skipped}
    artifact_id = trial.user_attrs.get(ATTR_MODEL_ARTIFACT)
    if not artifact_id:
        raise LookupError(f"trial {trial.number}'s model was not saved")
    dataset = datasets.get(spec.dataset, services.settings.data_root)
    if len(dataset.y_test) == 0:
        return {"trial_number": trial.number, "skipped": "the dataset has no test split"}
    model = load_trial_model(services, artifact_id)
    metrics = model.evaluate(dataset.x_test, dataset.y_test, verbose=0, return_dict=True)
    predicted = predicted_labels(model.predict(dataset.x_test, verbose=0))
    per_class = per_class_summary(dataset.y_test, predicted, dataset.n_classes)
    services.storage.set_study_user_attr(
        row.optuna_study_id, STUDY_ATTR_TEST_CLASSES, {"trial_number": trial.number, **per_class}
    )
    return {
        "trial_number": trial.number,
        "test_metrics": {f"test_{k}": float(v) for k, v in metrics.items()},
        "test_samples": len(dataset.y_test),
        "model_artifact_id": artifact_id,
    }
