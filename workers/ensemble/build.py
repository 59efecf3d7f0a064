"""Build a completed study's ensemble: pick the members among the trials whose models are
stored, fit their weights on the validation split, export one ``.keras`` file to the artifact
store, and measure the ensemble and the best single trial side by side.

Metrics are computed from the predictions (accuracy and log-loss, the same for the ensemble and
the best trial -- a member's Keras loss would add its regularisation penalty). The record goes
into the study's final evaluation (``evaluation["ensemble"]``, shown by
``GET /studies/{id}/ensemble``); a summary goes into the Optuna study's user attribute
``ensemble`` and the file is an artifact of the Optuna study, so optuna-dashboard shows both.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna

from tuner_service.service import Services

from ..datasets import Dataset
from .export import build_ensemble_model
from .keeping import model_candidates, study_direction
from .selection import select_members
from .weights import fit_weights, log_loss, weighted_average

log = logging.getLogger(__name__)

#: The Optuna study's user attribute that summarises the ensemble (optuna-dashboard shows it).
STUDY_ATTR_ENSEMBLE = "ensemble"


def _metrics(probabilities: np.ndarray, y: np.ndarray) -> dict[str, float]:
    p = np.asarray(probabilities)
    labels = np.asarray(y).reshape(-1).astype(int)
    if p.ndim == 1 or p.shape[1] == 1:
        predicted = (p.reshape(-1) > 0.5).astype(int)
    else:
        predicted = np.argmax(p, axis=1)
    return {"accuracy": float(np.mean(predicted == labels)), "log_loss": log_loss(p, labels)}


def _predict(models: Sequence[keras.Model], x: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(m.predict(x, verbose=0), dtype=np.float64) for m in models]


def build_study_ensemble(
    services: Services,
    study: optuna.Study,
    dataset: Dataset,
    *,
    size: int,
    method: str,
    load_model: Callable[[str], keras.Model],
) -> dict[str, Any]:
    """Build, store and measure the ensemble of ``study``; returns its record.

    Raises:
        ValueError: a bad method, or members whose predictions differ in shape.
        LookupError: a member's model vanished while it was being loaded.
    """
    found = model_candidates(services, study)
    if not found:
        return {"skipped": "no completed trial kept its model"}
    members = select_members([c for c, _ in found.values()], size, study_direction(study))
    models = [load_model(found[c.number][1]) for c in members]
    val_preds = _predict(models, dataset.x_val)
    weights = fit_weights(method, val_preds, dataset.y_val)
    model = build_ensemble_model(models, weights, name=f"ensemble_of_{study.study_name}"[:100])
    has_test = len(dataset.y_test) > 0
    test_preds = _predict(models, dataset.x_test) if has_test else []
    record: dict[str, Any] = {
        "method": method,
        "size": size,
        "members": [c.number for c in members],
        "weights": weights,
        "member_values": [c.value for c in members],
        "best_trial_number": members[0].number,
        "validation": {
            "ensemble": _metrics(weighted_average(val_preds, weights), dataset.y_val),
            "best_trial": _metrics(val_preds[0], dataset.y_val),
        },
        "test": None,
    }
    if has_test:
        record["test"] = {
            "ensemble": _metrics(weighted_average(test_preds, weights), dataset.y_test),
            "best_trial": _metrics(test_preds[0], dataset.y_test),
        }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ensemble.keras"
        model.save(path)
        record["model_artifact_id"] = optuna.artifacts.upload_artifact(
            artifact_store=services.artifacts,
            file_path=str(path),
            study_or_trial=study,
            mimetype="application/octet-stream",
        )
    summary = {k: record[k] for k in ("method", "members", "weights", "model_artifact_id")}
    summary["test"] = record["test"]
    study.set_user_attr(STUDY_ATTR_ENSEMBLE, summary)
    return record
