"""The API docs pages (/docs: Swagger UI, /redoc: ReDoc) work without network.

Their scripts and styles are files installed with ``fastapi-offline`` (served from the API
itself, see :func:`tuner_service.api.app.create_app`). ReDoc's side menu still points an image
at its vendor's CDN; a Content-Security-Policy on the two pages keeps the browser from asking
for anything that is not on the API's own origin, so no request leaves the host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

DOCS_PATHS = ("/docs", "/redoc")

#: Own origin only; inline scripts/styles are how FastAPI's docs pages start; ReDoc runs its
#: search in a worker from a blob URL.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'"
)


def restrict_docs_to_own_origin(app: FastAPI) -> None:
    """Add the Content-Security-Policy above to the responses of /docs and /redoc."""

    @app.middleware("http")
    async def docs_csp(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path in DOCS_PATHS:
            response.headers["Content-Security-Policy"] = DOCS_CSP
        return response
