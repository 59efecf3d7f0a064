"""Errors of the Python client: one class per API error status."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """An error response of the API: ``status_code`` and its ``detail``."""

    def __init__(self, status_code: int, detail: Any, method: str, url: str) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{method} {url}: HTTP {status_code}: {self._describe()}")

    @property
    def problems(self) -> list[dict[str, Any]]:
        """A 422's problems, each ``{"loc": [...], "msg": ..., "type": ...}``; else empty."""
        return list(self.detail) if isinstance(self.detail, list) else []

    def _describe(self) -> str:
        if not self.problems:
            return str(self.detail)
        return "; ".join(
            ".".join(str(p) for p in e.get("loc", ())) + f": {e.get('msg', '')}"
            for e in self.problems
        )


class AuthenticationError(ApiError):
    """401: the API token is missing or wrong."""


class NotFoundError(ApiError, KeyError):
    """404: no such study (or nothing to show yet, e.g. no finished trial)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConflictError(ApiError):
    """409: a duplicate name, or a move the study's status does not allow."""


class ValidationError(ApiError, ValueError):
    """422: the request is invalid; :attr:`problems` lists every problem with its path."""


_ERRORS: dict[int, type[ApiError]] = {
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}


def raise_for(r: httpx.Response) -> None:
    if r.is_success:
        return
    try:
        detail = r.json().get("detail", r.text)
    except ValueError:
        detail = r.text
    cls = _ERRORS.get(r.status_code, ApiError)
    raise cls(r.status_code, detail, r.request.method, str(r.request.url))
