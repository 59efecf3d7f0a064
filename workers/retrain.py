"""Retrain a study's best trial from what the trial recorded, on any worker host.

A trial records what makes it reproducible: its full parameters, its seed, the dataset (named
in the study spec) with a fingerprint of its arrays, and the package versions. Retraining
loads the same dataset split, checks the fingerprint (the data must be the data the trial saw),
seeds everything with the trial's seed and trains through the same code path as the worker
(:func:`workers.trial_runner.run_trial`), then measures the model on the test split.

Used by ``tuner-service retrain`` (imported there lazily: the control plane never imports
TensorFlow at module level).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from tuner_service.errors import NotFoundError
from tuner_service.optuna_bridge import (
    ATTR_DATASET_FINGERPRINT,
    ATTR_PARAMS_FULL,
    ATTR_SEED,
    ATTR_VERSIONS,
    best_trials,
)
from tuner_service.service import Services
from tuner_service.spec import StudySpec

from .datasets import load_dataset
from .runtime import clear_session, seed_everything
from .trial_runner import Decision, Outcome, run_trial
from .worker import package_versions

log = logging.getLogger(__name__)

__all__ = ["DataMismatchError", "RetrainError", "retrain"]


class RetrainError(RuntimeError):
    """The trial cannot be retrained (no single best trial, training failed, ...)."""


class DataMismatchError(RetrainError):
    """The dataset loaded now differs from the one the trial was trained on."""


@dataclass(frozen=True)
class _Chosen:
    trial: FrozenTrial
    params: dict[str, Any]
    seed: int


def _choose_trial(services: Services, study_id: int, trial_number: int | None) -> _Chosen:
    row = services.study_row(study_id)
    study = services.optuna_study(row)
    if trial_number is None:
        best = best_trials(study)
        if not best:
            raise NotFoundError(f"study {study_id} has no completed trial")
        if len(best) > 1:
            numbers = ", ".join(str(t.number) for t in best)
            raise RetrainError(
                f"study {study_id} has several objectives: choose a trial of its Pareto front "
                f"with --trial ({numbers})"
            )
        trial = best[0]
    else:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
        if not found:
            raise NotFoundError(f"study {study_id} has no trial {trial_number}")
        trial = found[0]
        if trial.state != TrialState.COMPLETE:
            raise RetrainError(f"trial {trial_number} is {trial.state.name.lower()}, not complete")
    params = dict(trial.user_attrs.get(ATTR_PARAMS_FULL) or trial.params)
    seed = trial.user_attrs.get(ATTR_SEED)
    if seed is None:
        raise RetrainError(f"trial {trial.number} recorded no seed: it cannot be reproduced")
    return _Chosen(trial, params, int(seed))


def _version_differences(recorded: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    now = package_versions()
    return {
        name: {"recorded": str(v), "now": now.get(name, "missing")}
        for name, v in recorded.items()
        if now.get(name) != v
    }


def retrain(
    services: Services,
    study_id: int,
    *,
    trial_number: int | None = None,
    epochs: int | None = None,
    allow_data_change: bool = False,
    out: Path | None = None,
) -> dict[str, Any]:
    """Train the best trial's parameters again (or trial ``trial_number``'s) from its recorded
    seed and dataset split; returns a report with the recorded and new validation values and
    the new model's test metrics. ``epochs`` overrides the study's ``max_epochs``; ``out``
    saves the retrained model there (``.keras``).

    Raises:
        NotFoundError: unknown study or trial, or no completed trial.
        DataMismatchError: the dataset's fingerprint differs from the trial's (unless
            ``allow_data_change``, which logs a warning instead).
        RetrainError: no single best trial, no recorded seed, or training failed.
        DatasetError: the dataset cannot be loaded.
    """
    row = services.study_row(study_id)
    spec = StudySpec.model_validate(row.spec)
    chosen = _choose_trial(services, study_id, trial_number)
    trial = chosen.trial
    dataset = load_dataset(spec.dataset, data_root=services.settings.data_root)
    recorded_fp = trial.user_attrs.get(ATTR_DATASET_FINGERPRINT)
    fingerprint_matches = recorded_fp == dataset.fingerprint
    if not fingerprint_matches:
        msg = (
            f"dataset {spec.dataset.name!r} differs from the one trial {trial.number} was "
            f"trained on (fingerprint {str(recorded_fp)[:12]}... recorded, "
            f"{dataset.fingerprint[:12]}... now)"
        )
        if not allow_data_change:
            raise DataMismatchError(msg + "; pass --allow-data-change to retrain anyway")
        log.warning("%s; retraining anyway", msg)
    versions = _version_differences(trial.user_attrs.get(ATTR_VERSIONS) or {})
    if versions:
        log.warning("package versions differ from the trial's: %s", versions)
    max_epochs = epochs or spec.budget.max_epochs
    log.info(
        "retraining study %s trial %s (seed %s, %d epochs)",
        study_id, trial.number, chosen.seed, max_epochs,
    )
    seed_everything(chosen.seed)
    try:
        result = run_trial(
            chosen.params,
            dataset,
            objectives=spec.objectives,
            max_epochs=max_epochs,
            on_epoch=lambda _epoch, _metrics: Decision.CONTINUE,
        )
        if result.outcome is not Outcome.COMPLETE or result.model is None:
            raise RetrainError(f"training failed: {result.reason or result.outcome.value}")
        test_metrics: dict[str, float] | None = None
        if len(dataset.y_test):
            ev = result.model.evaluate(
                dataset.x_test, dataset.y_test, verbose=0, return_dict=True
            )
            test_metrics = {f"test_{k}": float(v) for k, v in ev.items()}
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            result.model.save(out)
    finally:
        clear_session()
    return {
        "study_id": study_id,
        "trial_number": trial.number,
        "params": chosen.params,
        "seed": chosen.seed,
        "epochs": result.epochs,
        "max_epochs": max_epochs,
        "objectives": [o.metric for o in spec.objectives],
        "recorded_values": trial.values,
        "retrained_values": result.values,
        "test_metrics": test_metrics,
        "test_samples": len(dataset.y_test),
        "dataset": spec.dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "dataset_fingerprint_matches": fingerprint_matches,
        "version_differences": versions,
        "wall_time_s": result.wall_time_s,
        "model_path": str(out) if out is not None else None,
    }
