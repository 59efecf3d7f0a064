"""/metrics: Prometheus text format, computed from the database at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from .deps import require_read

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    dependencies=[Depends(require_read)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(request: Request) -> Response:
    """Studies by status, trials by state, trial durations, workers alive, trials waiting."""
    data = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
