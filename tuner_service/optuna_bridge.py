"""Everything the service asks of Optuna: its storage on our database, the user attributes it
writes, and trials read back as plain data (samplers and pruners: :mod:`.engines.optuna`).

Optuna is pure Python (no TensorFlow), so the control plane may use it freely.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .db import configure_sqlite, engine_kwargs, is_sqlite, normalize_url
from .reads import TrialReads
from .retrying import RetryingRDBStorage, study_id_of

optuna.logging.set_verbosity(optuna.logging.WARNING)

# User attributes the service writes on each trial (names are public: the API shows them).
ATTR_WORKER = "worker"
ATTR_FAIL_REASON = "fail_reason"
ATTR_HISTORY = "history"  # per-epoch metrics: {"val_accuracy": [...], "loss": [...], ...}
ATTR_EPOCHS = "epochs"
ATTR_SEED = "seed"
ATTR_DATASET_FINGERPRINT = "dataset_fingerprint"
ATTR_VERSIONS = "versions"
ATTR_PARAMS_FULL = "full_params"
ATTR_MODEL_ARTIFACT = "model_artifact_id"
ATTR_WARM_START = "warm_start"
ATTR_DEVICE_SECONDS = "device_seconds"
ATTR_PARAM_COUNT = "param_count"
ATTR_WALL_TIME = "wall_time_s"
ATTR_EFFECTIVE_LR = "effective_learning_rate"  # learning_rate scaled by lr_scaling
ATTR_BATCH_SIZE_USED = "batch_size_used"  # after halvings for lack of device memory
ATTR_BATCH_HALVINGS = "batch_halvings"
# Key of a study's evaluation record that asks for an ensemble of another size / method.
ENSEMBLE_REQUEST = "ensemble_request"
# study attr: the evaluated model's per-class precision/recall and confusion matrix (test split)
STUDY_ATTR_TEST_CLASSES = "test_per_class"
# System attributes shared with optuna.storages.RetryFailedTrialCallback.
SYS_FAILED_TRIAL = "failed_trial"
SYS_RETRY_HISTORY = "retry_history"


def create_optuna_storage(url: str) -> RetryingRDBStorage:
    """Optuna's storage on the service database (creates Optuna's tables when missing), every
    call under the retry policy."""
    url = normalize_url(url)
    # No pre-ping: a trial makes ~30 storage calls, and on a server a ping is one more round
    # trip before each (about a tenth of the coordination time on PostgreSQL). Every call is
    # retried on transient errors, and SQLAlchemy drops a pool's connections once one of them
    # turns out to be disconnected (after a server restart: one failed, retried attempt).
    kw = engine_kwargs(url)
    if not is_sqlite(url):
        kw["pool_pre_ping"] = False
    storage = RetryingRDBStorage(url, engine_kwargs=kw)
    if is_sqlite(url):
        configure_sqlite(storage.engine)
    return storage


def _finite(v: float | None) -> float | None:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return None
    return v


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def trial_to_dict(t: FrozenTrial) -> dict[str, Any]:
    """A trial as the API shows it."""
    duration = None
    if t.datetime_start and t.datetime_complete:
        duration = (t.datetime_complete - t.datetime_start).total_seconds()
    history = t.system_attrs.get(SYS_RETRY_HISTORY)
    values = None if t.values is None else [_finite(v) for v in t.values]
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "params": t.params,
        "values": values,
        "value": values[0] if values and len(values) == 1 else None,
        "intermediate_values": {
            str(k): _finite(v) for k, v in sorted(t.intermediate_values.items())
        },
        "datetime_start": _iso(t.datetime_start),
        "datetime_complete": _iso(t.datetime_complete),
        "duration_s": duration,
        "worker": t.user_attrs.get(ATTR_WORKER),
        "fail_reason": t.user_attrs.get(ATTR_FAIL_REASON),
        "retry_of": history[-1] if history else None,
        "retry_count": len(history) if history else 0,
        "warm_start": bool(t.user_attrs.get(ATTR_WARM_START, False)),
        "user_attrs": {
            k: v for k, v in t.user_attrs.items() if k not in (ATTR_WORKER, ATTR_FAIL_REASON)
        },
    }


FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial (single objective) or the Pareto front (several); empty when none."""
    try:
        if len(study.directions) == 1:
            return [study.best_trial]
        return list(study.best_trials)
    except ValueError:
        return []


def retries_used(trial: FrozenTrial) -> int:
    """How many times this trial's configuration has already been re-queued."""
    return len(trial.system_attrs.get(SYS_RETRY_HISTORY, []))


def requeue_trial(
    study: optuna.Study, trial: FrozenTrial, *, max_retries: int, reads: TrialReads
) -> int | None:
    """Add a WAITING copy of ``trial`` (same params), tagged like Optuna's
    ``RetryFailedTrialCallback`` so that its ``retried_trial_number``/``retry_history`` work.

    Returns the retry count of the new trial, or ``None`` when ``max_retries`` is spent.
    Idempotent: a copy already added (by another reaper, or an attempt whose answer was lost:
    see :mod:`tuner_service.retrying`) is not added twice (looked up among the study's trials
    that carry a retry history, not by loading every trial).
    """
    history = [*trial.system_attrs.get(SYS_RETRY_HISTORY, []), trial.number]
    if len(history) > max_retries:
        return None
    keep = {k: v for k, v in trial.user_attrs.items() if k == ATTR_WARM_START}

    for _, seen in reads.system_attr_values(study_id_of(study), SYS_RETRY_HISTORY):
        if seen == history:
            return len(history)
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=keep,
            system_attrs={
                SYS_FAILED_TRIAL: trial.system_attrs.get(SYS_FAILED_TRIAL, trial.number),
                SYS_RETRY_HISTORY: history,
            },
        )
    )
    return len(history)
