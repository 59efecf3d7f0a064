"""The FastAPI application, built by :func:`create_app` (nothing is built at import time)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from ..metrics import build_registry
from ..reaper import Reaper, ReaperThread
from ..service import Services
from ..settings import Settings, load_settings
from . import errors, routes_metrics, routes_ops, routes_studies
from .docs import restrict_docs_to_own_origin

log = logging.getLogger(__name__)


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
    app.state.metrics_registry = build_registry(services.repo)
    errors.install(app)
    restrict_docs_to_own_origin(app)
    app.include_router(routes_studies.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_metrics.router)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse(
                {"detail": f"request body over {settings.max_body_bytes} bytes"}, status_code=413
            )
        return await call_next(request)

    return app
