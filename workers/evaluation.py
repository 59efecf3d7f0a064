"""The final evaluation of a completed study: the best trial's saved model, once, on the test
split. Any worker may do it; a compare-and-set on the study makes sure only one does."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import keras

from tuner_service.engines import get_engine
from tuner_service.models import StudyRow
from tuner_service.optuna_bridge import ATTR_MODEL_ARTIFACT
from tuner_service.service import Services
from tuner_service.spec import StudySpec
from tuner_service.states import EvaluationState

from .datasets import DatasetCache
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


def evaluate_pending(services: Services, datasets: DatasetCache) -> int:
    """Evaluate every completed study whose evaluation is pending (an indexed lookup, not a
    walk over every completed study); returns how many."""
    repo = services.repo
    n = 0
    for row in services.reads.pending_evaluations():
        if not repo.set_evaluation(row.id, target=EvaluationState.RUNNING):
            continue  # another worker took it
        try:
            evaluation = _evaluate(services, datasets, row, StudySpec.model_validate(row.spec))
            repo.set_evaluation(row.id, target=EvaluationState.DONE, evaluation=evaluation)
            log.info("study %s: best trial evaluated on the test split: %s", row.id, evaluation)
        except Exception as exc:  # the evaluation fails, the worker goes on
            log.exception("study %s: final evaluation failed", row.id)
            repo.set_evaluation(
                row.id,
                target=EvaluationState.FAILED,
                evaluation={"error": f"{type(exc).__name__}: {exc}"},
            )
        finally:
            clear_session()
        n += 1
    return n


def _evaluate(services: Services, datasets: DatasetCache, row: StudyRow, spec: StudySpec) -> dict:
    if spec.is_multi_objective:
        return {"skipped": "several objectives: no single best model to evaluate"}
    best = services.reads.best(row.optuna_study_id)
    if not best:
        return {"skipped": "no trial completed"}
    trial = best[0]
    if not get_engine(spec.engine.kind).keeps_model:  # e.g. a grid: scores only
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
    return {
        "trial_number": trial.number,
        "test_metrics": {f"test_{k}": float(v) for k, v in metrics.items()},
        "test_samples": len(dataset.y_test),
        "model_artifact_id": artifact_id,
    }
