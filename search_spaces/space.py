"""The search-space language (work in progress: full implementation follows)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .problems import Problem, SearchSpaceError
from .vocabulary import VOCABULARY, with_defaults


@dataclass(frozen=True)
class Dimension:
    name: str
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...] = ()

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return with_defaults(params)


def validate_space(raw: Any) -> list[Problem]:
    if not isinstance(raw, Mapping):
        return [Problem((), "the search space must be a JSON object", "not_an_object")]
    return [
        Problem((k,), f"unknown hyperparameter {k!r}", "unknown_name")
        for k in raw
        if k not in VOCABULARY
    ]


def parse_space(raw: Any) -> SearchSpace:
    problems = validate_space(raw)
    if problems:
        raise SearchSpaceError(problems)
    return SearchSpace()


def search_space_json_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {n: {} for n in VOCABULARY}, "additionalProperties": False}
