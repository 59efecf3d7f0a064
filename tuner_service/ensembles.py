"""A study's ensemble as the control plane sees it: the record a worker left in the study's
final evaluation (``evaluation["ensemble"]``), its ``.keras`` file, and asking for another
build (a different size or method) of a finished study. The build itself is the workers'
(:mod:`workers.ensemble`); asking sets the evaluation pending again with the request, and the
next worker that polls evaluates the study again, ensemble included."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engines import get_engine
from .errors import ConflictError, NotFoundError
from .optuna_bridge import ENSEMBLE_REQUEST
from .spec import StudySpec
from .states import EvaluationState, StudyStatus

if TYPE_CHECKING:
    from .service import Services


def ensemble(services: Services, study_id: int) -> dict[str, Any]:
    """Members, weights, method, and validation / test metrics of the ensemble and of the best
    single trial.

    Raises:
        NotFoundError: unknown study, or no ensemble built (yet, or at all: the record then
            says why, e.g. the build failed).
    """
    row = services.study_row(study_id)
    record = (row.evaluation or {}).get("ensemble")
    if record is None:
        state = row.evaluation_state or "not started (the study has not completed)"
        raise NotFoundError(
            f"study {study_id} has no ensemble (final evaluation: {state})"
        )
    return {"study_id": row.id, "evaluation_state": row.evaluation_state, **record}


def ensemble_model(services: Services, study_id: int) -> tuple[str, bytes]:
    """The ensemble's ``.keras`` file: (file name, bytes).

    Raises:
        NotFoundError: no ensemble, or its file is missing.
    """
    record = ensemble(services, study_id)
    artifact_id = record.get("model_artifact_id")
    if not artifact_id:
        reason = record.get("error") or record.get("skipped") or "no model was saved"
        raise NotFoundError(f"study {study_id}: the ensemble has no model ({reason})")
    data = services.repo.get_artifact(artifact_id)
    if data is None:
        raise NotFoundError(f"study {study_id}: ensemble artifact {artifact_id} is missing")
    return f"study{study_id}-ensemble.keras", data


def request_ensemble(services: Services, study_id: int, size: int, method: str) -> dict[str, Any]:
    """Build the ensemble of a finished study again with ``size`` members by ``method``.

    Raises:
        NotFoundError: unknown study.
        ConflictError: the study has not completed, has no single objective or keeps no
            models, or its final evaluation is still pending or running.
    """
    row = services.study_row(study_id)
    if row.status != StudyStatus.COMPLETED.value:
        raise ConflictError(
            f"study {study_id} is {row.status}; an ensemble is built once it has completed"
        )
    spec = StudySpec.model_validate(row.spec)
    if spec.is_multi_objective:
        raise ConflictError(f"study {study_id} has several objectives: no ensemble")
    if not get_engine(spec.engine.kind).keeps_model:
        raise ConflictError(f"study {study_id}: {spec.engine.kind} studies keep no models")
    request = {"size": size, "method": method}
    evaluation = {**(row.evaluation or {}), ENSEMBLE_REQUEST: request}
    if not services.repo.reopen_evaluation(row.id, evaluation):
        raise ConflictError(
            f"study {study_id}: its final evaluation is {row.evaluation_state}; ask again "
            "when it is done"
        )
    return {"study_id": row.id, "evaluation_state": EvaluationState.PENDING.value,
            "request": request}
