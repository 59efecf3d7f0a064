"""The one place where service errors become HTTP responses."""

from __future__ import annotations

import json
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
        _shorten_input(e)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


#: An error echoes the offending input only when it is this short (JSON characters).
MAX_ECHOED_INPUT = 200


def _shorten_input(error: dict[str, Any]) -> None:
    """Never echo a large input back: it is replaced by its size."""
    if "input" not in error:
        return
    try:
        size = len(json.dumps(jsonable_encoder(error["input"])))
    except (TypeError, ValueError):
        size = MAX_ECHOED_INPUT + 1
    if size > MAX_ECHOED_INPUT:
        error["input"] = f"<{size} characters, not echoed>"


def install(app: FastAPI) -> None:
    app.add_exception_handler(TunerError, _tuner_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
