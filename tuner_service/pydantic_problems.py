"""Problems (:class:`~search_spaces.problems.Problem`) and pydantic's validation errors, each
turned into the other, so that one validation pass reports every problem in one shape.

:class:`~tuner_service.spec.StudySpec` adds the search space's problems to pydantic's own
(:func:`with_problems`); :func:`~tuner_service.spec.parse_study_spec` turns the result into a
:class:`~tuner_service.errors.SpecError` (:func:`problems_of`), and FastAPI into its 422.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

from pydantic import ValidationError
from pydantic_core import ErrorDetails, ErrorType, InitErrorDetails, PydanticCustomError

from .errors import Problem

#: pydantic's own error types: these are raised again as they came (context included).
_KNOWN_TYPES = frozenset(get_args(ErrorType))


def problems_of(exc: ValidationError) -> list[Problem]:
    """Each error of ``exc`` as a Problem (its path, message and type)."""
    return [Problem(tuple(e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)]


def with_problems(
    title: str,
    errors: Sequence[ErrorDetails],
    problems: Sequence[Problem],
    *,
    prefix: tuple[str | int, ...],
    data: Any,
) -> ValidationError:
    """One ValidationError holding pydantic's ``errors`` and then ``problems``, each problem's
    path under ``prefix`` and its input the value found there in ``data``."""
    lines = [_again(e) for e in errors]
    for p in problems:
        lines.append(
            InitErrorDetails(
                type=PydanticCustomError(p.code, p.message),
                loc=(*prefix, *p.path),
                input=_value_at(data, p.path),
            )
        )
    return ValidationError.from_exception_data(title, lines)


def _again(e: ErrorDetails) -> InitErrorDetails:
    if e["type"] not in _KNOWN_TYPES:
        return InitErrorDetails(
            type=PydanticCustomError(e["type"], e["msg"]), loc=e["loc"], input=e["input"]
        )
    line = InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"])
    if "ctx" in e:
        line["ctx"] = e["ctx"]
    return line


def _value_at(data: Any, path: Sequence[str | int]) -> Any:
    """The value at ``path`` in ``data``, or at its longest prefix that exists."""
    for key in path:
        if isinstance(data, Mapping):
            if key not in data:
                break
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -1 < key < len(data):
            data = data[key]
        else:
            break
    return data
