"""/studies: create, list, inspect, warm-start, pause, resume, cancel; the ensemble."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .. import ensembles
from ..report import build_report
from ..spec import ENSEMBLE_METHODS, StudySpec
from .deps import ServicesDep, require_read, require_write
from .schemas import (
    BestTrialPublic,
    EnqueueTrial,
    Message,
    StudiesPublic,
    StudyDetail,
    StudyPublic,
    TrialsPublic,
    error_responses,
)

router = APIRouter(prefix="/studies", tags=["studies"])

StatusFilter = Literal["queued", "running", "paused", "cancelled", "completed", "failed"]
StateFilter = Literal["running", "waiting", "complete", "pruned", "fail"]
MAX_INT = 2**31 - 1  # ids and offsets beyond a database integer are refused with 422
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]
StudyId = Annotated[int, Path(ge=1, le=MAX_INT)]
Write = [Depends(require_write)]
Read = [Depends(require_read)]
# Error statuses documented in the OpenAPI schema (checked by the schemathesis test).
ON_STUDY_READ = error_responses(401, 404)
ON_STUDY_WRITE = error_responses(401, 404, 409)
# A route that downloads a .keras file (see _keras_file).
KERAS_FILE: dict[str, Any] = {
    "dependencies": Read,
    "responses": {200: {"content": {"application/octet-stream": {}}}, **ON_STUDY_READ},
    "response_class": Response,
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyPublic,
    dependencies=Write,
    responses=error_responses(401, 409, 413),
)
async def create_study(spec: StudySpec, services: ServicesDep) -> Any:
    """Queue a study. 422 lists every problem of the spec with its path; 409 on a duplicate name."""
    row = await run_in_threadpool(services.create_study, spec)
    return services.study_summary(row)


@router.get("", response_model=StudiesPublic, dependencies=Read, responses=error_responses(401))
async def list_studies(
    services: ServicesDep,
    limit: Limit = 100,
    offset: Offset = 0,
    status: StatusFilter | None = None,
) -> Any:
    data, count = await run_in_threadpool(
        services.list_studies, status=status, limit=limit, offset=offset
    )
    return {"data": data, "count": count}


@router.get("/{study_id}", response_model=StudyDetail, dependencies=Read, responses=ON_STUDY_READ)
async def get_study(study_id: StudyId, services: ServicesDep) -> Any:
    return await run_in_threadpool(services.study_detail, study_id)


@router.get(
    "/{study_id}/trials", response_model=TrialsPublic, dependencies=Read, responses=ON_STUDY_READ
)
async def list_trials(
    study_id: StudyId,
    services: ServicesDep,
    limit: Limit = 100,
    offset: Offset = 0,
    state: StateFilter | None = None,
) -> Any:
    data, count = await run_in_threadpool(
        services.list_trials, study_id, state=state, limit=limit, offset=offset
    )
    return {"data": data, "count": count}


@router.post(
    "/{study_id}/trials",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Message,
    dependencies=Write,
    responses=error_responses(401, 404, 409, 413),
)
async def enqueue_trial(study_id: StudyId, body: EnqueueTrial, services: ServicesDep) -> Any:
    """Warm start: a known configuration, tried before any sampled one."""
    await run_in_threadpool(services.enqueue_trial, study_id, body.params)
    return {"message": "configuration queued; it runs before sampled trials"}


@router.get(
    "/{study_id}/best", response_model=BestTrialPublic, dependencies=Read, responses=ON_STUDY_READ
)
async def best_trial(study_id: StudyId, services: ServicesDep) -> Any:
    """The best trial (with test-set metrics once measured); 404 until a trial finished."""
    return await run_in_threadpool(services.best, study_id)


@router.get("/{study_id}/grid", dependencies=Read, responses=ON_STUDY_READ)
async def grid(study_id: StudyId, services: ServicesDep) -> Any:
    """An ``sklearn_grid`` study's ``cv_results_``, ``best_params_``, ``best_score_`` (like
    ``GridSearchCV``); 404 for other engines."""
    return await run_in_threadpool(services.grid, study_id)


@router.get(
    "/{study_id}/best/model",
    **KERAS_FILE,
)
async def best_model(study_id: StudyId, services: ServicesDep) -> Response:
    """Download the best trial's ``.keras`` model file."""
    return _keras_file(*await run_in_threadpool(services.best_model, study_id))


@router.get(
    "/{study_id}/report",
    dependencies=Read,
    responses={200: {"content": {"text/html": {}}}, **ON_STUDY_READ},
    response_class=Response,  # errors stay JSON (documented as such)
)
async def report(study_id: StudyId, services: ServicesDep) -> HTMLResponse:
    """The study's report: one self-contained HTML page (summary, optimisation history,
    learning curves, importances, parallel coordinates, best trial and confusion matrix)."""
    return HTMLResponse(await run_in_threadpool(build_report, services, study_id))


@router.post(
    "/{study_id}/pause", response_model=StudyPublic, dependencies=Write, responses=ON_STUDY_WRITE
)
async def pause(study_id: StudyId, services: ServicesDep) -> Any:
    """Hand out no new trial; running trials finish."""
    return services.study_summary(await run_in_threadpool(services.pause, study_id))


@router.post(
    "/{study_id}/resume", response_model=StudyPublic, dependencies=Write, responses=ON_STUDY_WRITE
)
async def resume(study_id: StudyId, services: ServicesDep) -> Any:
    return services.study_summary(await run_in_threadpool(services.resume, study_id))


@router.post(
    "/{study_id}/cancel", response_model=StudyPublic, dependencies=Write, responses=ON_STUDY_WRITE
)
async def cancel(study_id: StudyId, services: ServicesDep) -> Any:
    """Stop for good: running trials stop at their next epoch; finished trials are kept."""
    return services.study_summary(await run_in_threadpool(services.cancel, study_id))


class EnsembleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(5, ge=1, le=20, description="Members at most.")
    method: Literal[ENSEMBLE_METHODS] = "weighted"  # type: ignore[valid-type]


@router.get("/{study_id}/ensemble", dependencies=Read, responses=ON_STUDY_READ)
async def get_ensemble(study_id: StudyId, services: ServicesDep) -> Any:
    """The ensemble of the best trials: members (trial numbers), weights, method, and the
    validation and test metrics of the ensemble and of the best single trial; 404 until it is
    built."""
    return await run_in_threadpool(ensembles.ensemble, services, study_id)


@router.post(
    "/{study_id}/ensemble",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=Write,
    responses=ON_STUDY_WRITE,
)
async def build_ensemble(
    study_id: StudyId, services: ServicesDep, body: EnsembleRequest | None = None
) -> Any:
    """Build the ensemble of a completed study again (another size or method): a worker does
    it at its next poll (GET shows it then); 409 while the study runs or is being evaluated."""
    req = body or EnsembleRequest()
    return await run_in_threadpool(
        ensembles.request_ensemble, services, study_id, req.size, req.method
    )


@router.get(
    "/{study_id}/ensemble/model",
    **KERAS_FILE,
)
async def ensemble_model(study_id: StudyId, services: ServicesDep) -> Response:
    """Download the ensemble's ``.keras`` file (plain ``keras.models.load_model`` opens it)."""
    return _keras_file(*await run_in_threadpool(ensembles.ensemble_model, services, study_id))


def _keras_file(name: str, data: bytes) -> Response:
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
