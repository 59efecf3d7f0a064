"""The service's one error hierarchy.

Built on standard exceptions so callers may catch either; mapped to HTTP status codes in exactly
one place (:func:`tuner_service.api.errors.status_for`).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_spaces.problems import Problem


class TunerError(Exception):
    """Base of every error the service raises on purpose."""


class NotFoundError(TunerError, KeyError):
    """A study, trial or worker does not exist (HTTP 404)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"


class ConflictError(TunerError):
    """The request clashes with the current state, e.g. a duplicate study name (HTTP 409)."""


class InvalidTransitionError(ConflictError):
    """A study cannot move from its current status to the requested one (HTTP 409)."""


class SpecError(TunerError, ValueError):
    """A study spec or parameter set is invalid; ``problems`` lists each one (HTTP 422)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class LeaseLostError(ConflictError):
    """The lease was taken back (its worker looked silent) before the worker recorded its
    trial; the worker drops the work, and the reaper re-queues the trial."""


class AuthError(TunerError):
    """Missing or wrong API token (HTTP 401)."""


__all__ = [
    "AuthError",
    "ConflictError",
    "InvalidTransitionError",
    "LeaseLostError",
    "NotFoundError",
    "Problem",
    "SpecError",
    "TunerError",
]
