"""/workers, /healthz."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from ..migrate import current_revision
from .deps import ServicesDep, require_read
from .schemas import Health, WorkersPublic, error_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/workers",
    response_model=WorkersPublic,
    dependencies=[Depends(require_read)],
    responses=error_responses(401),
)
async def list_workers(services: ServicesDep, include_stopped: bool = False) -> Any:
    data = await run_in_threadpool(services.workers, include_stopped=include_stopped)
    return {"data": data, "count": len(data)}


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(services: ServicesDep, response: Response) -> Any:
    try:
        rev = await run_in_threadpool(current_revision, services.engine)
    except Exception as exc:  # the database is down: say so, do not crash
        response.status_code = 503
        return {"status": "unavailable", "database": f"error: {type(exc).__name__}"}
    return {"status": "ok", "database": "ok", "schema_revision": rev}
