"""Validation problems: each names its JSON path and says, in a sentence, what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    ``path`` is the JSON path from the root of the validated object (e.g.
    ``("learning_rate", "low")``); ``code`` is a short machine-readable kind
    (``unknown_name``, ``low_not_below_high``, ...).
    """

    path: tuple[str | int, ...]
    message: str
    code: str = "invalid"

    def dotted(self) -> str:
        return ".".join(str(p) for p in self.path) or "<root>"

    def __str__(self) -> str:
        return f"{self.dotted()}: {self.message}"


class SearchSpaceError(ValueError):
    """A search space (or parameter set) is invalid; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid search space")


class ProblemCollector:
    """Gathers the problems found while checking one input (every problem, not the first)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: tuple[str | int, ...], message: str, code: str) -> None:
        self.problems.append(Problem(path, message, code))
