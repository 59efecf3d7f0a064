"""The one place where service errors become HTTP responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    SpecError,
    TunerError,
)


def status_for(exc: TunerError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, SpecError):
        return 422
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, AuthError):
        return 401
    return 400


def _problem_detail(exc: SpecError) -> list[dict[str, Any]]:
    return [{"loc": ["body", *p.path], "msg": p.message, "type": p.code} for p in exc.problems]


async def _tuner_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TunerError)
    status = status_for(exc)
    detail: Any = _problem_detail(exc) if isinstance(exc, SpecError) else str(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422: every problem of the request with its path (a study spec's search-space
    problems among them, found by the same validation, :class:`~tuner_service.spec.StudySpec`)."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for e in errors:  # inputs and contexts may hold objects JSON cannot carry
        e.pop("ctx", None)
        e.pop("url", None)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TunerError, _tuner_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
