"""The FastAPI application, built by :func:`create_app` (nothing is built at import time)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..metrics import build_registry
from ..reaper import Reaper, ReaperThread
from ..service import Services
from ..settings import Settings, load_settings
from . import errors, routes_metrics, routes_ops, routes_studies
from .docs import restrict_docs_to_own_origin
from .limits import BodyLimit
from .openapi import documented_methods, published_schema

log = logging.getLogger(__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's error responses, except that a 405 lists in ``Allow`` every method served
    the schema documents at the path (Starlette names only those of the first route that
    matched it)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allow = ", ".join(documented_methods(request.app.openapi(), request.url.path))
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})


def create_app(settings: Settings | None = None, *, run_reaper: bool = True) -> FastAPI:
    settings = settings or load_settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        thread = None
        if run_reaper:
            reaper = Reaper(
                services.repo,
                services.storage,
                grace_period=settings.effective_grace_period,
                max_retries=settings.max_retries,
            )
            thread = ReaperThread(reaper, interval=settings.heartbeat_interval)
            thread.start()
        try:
            yield
        finally:
            if thread is not None:
                thread.stop()
            services.close()

    # /docs and /redoc from the Swagger UI and ReDoc files installed with fastapi-offline (no
    # CDN: the pages work on an air-gapped cluster).
    app = FastAPIOffline(
        title="Keras CNN tuning service",
        version="0.1.0",
        description="Queue hyperparameter studies of Keras CNNs; workers train the trials.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics_registry = build_registry(services.repo, services.reads)
    errors.install(app)
    restrict_docs_to_own_origin(app)
    app.include_router(routes_studies.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_metrics.router)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.openapi = lambda: published_schema(app)  # type: ignore[method-assign]
    return app
