"""The dimensions of a search space: float, int, categorical and fixed, with their conditions.

A dimension knows which values it can yield (:meth:`Dimension.value_problem`), how to ask an
Optuna-like trial for one (:meth:`Dimension.suggest`, through the duck-typed :class:`TrialLike`),
its values in a parameter grid and its JSON form. Build dimensions with
:func:`search_spaces.parse_space`, which checks them against the vocabulary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from .problems import Problem, SearchSpaceError
from .values import contains_value, fmt, is_int, is_number, on_float_grid, same_value, type_name
from .vocabulary import VOCABULARY, HyperParameter

__all__ = [
    "DIMENSION_KEYS",
    "DIMENSION_TYPES",
    "MAX_CHOICES",
    "MAX_DIMENSIONS",
    "MAX_GRID_VALUES",
    "TYPES_FOR_KIND",
    "CategoricalDimension",
    "Condition",
    "Dimension",
    "FixedDimension",
    "FloatDimension",
    "IntDimension",
    "TrialLike",
]

#: At most this many dimensions in one space.
MAX_DIMENSIONS = 64
#: At most this many choices in one categorical dimension.
MAX_CHOICES = 256
#: One dimension of a parameter grid enumerates at most this many values.
MAX_GRID_VALUES = 10_000

DIMENSION_TYPES = ("float", "int", "categorical", "fixed")

# The keys each dimension type accepts.
DIMENSION_KEYS: Mapping[str, tuple[str, ...]] = {
    "float": ("type", "low", "high", "log", "step", "when"),
    "int": ("type", "low", "high", "step", "log", "when"),
    "categorical": ("type", "choices", "when"),
    "fixed": ("type", "value", "when"),
}
# Which dimension types each vocabulary kind accepts.
TYPES_FOR_KIND: Mapping[str, tuple[str, ...]] = {
    "float": ("float", "categorical", "fixed"),
    "int": ("int", "categorical", "fixed"),
    "bool": ("categorical", "fixed"),
    "categorical": ("categorical", "fixed"),
}


class TrialLike(Protocol):
    """The part of ``optuna.trial.Trial`` that :meth:`SearchSpace.sample` uses."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def _decimals(x: float) -> int:
    exponent = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


# --------------------------------------------------------------------------------------------
# Dimensions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """``name``'s value must be one of ``values`` for the dimension to be active."""

    name: str
    values: tuple[Any, ...]

    def holds(self, params: Mapping[str, Any]) -> bool:
        return self.name in params and contains_value(self.values, params[self.name])


@dataclass(frozen=True)
class Dimension(ABC):
    """One hyperparameter of a search space: its name and its activation conditions."""

    type: ClassVar[str] = ""

    name: str
    when: tuple[Condition, ...] = field(default=(), kw_only=True)

    @property
    def hyperparameter(self) -> HyperParameter:
        return VOCABULARY[self.name]

    @property
    def default(self) -> Any:
        return VOCABULARY[self.name].default

    @property
    def conditional(self) -> bool:
        return bool(self.when)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.when)

    def is_active(self, params: Mapping[str, Any]) -> bool:
        """Whether every condition holds for ``params`` (a full parameter set)."""
        return all(c.holds(params) for c in self.when)

    @abstractmethod
    def value_problem(self, value: Any) -> tuple[str, str] | None:
        """``(code, message)`` saying why this dimension never yields ``value``, or None."""

    def can_take(self, value: Any) -> bool:
        """Whether the dimension can yield ``value`` (inactive conditionals yield the default)."""
        if self.value_problem(value) is None:
            return True
        return self.conditional and same_value(value, self.default)

    @abstractmethod
    def suggest(self, trial: TrialLike) -> Any:
        """Ask ``trial`` for this dimension's value (Optuna define-by-run)."""

    @abstractmethod
    def grid_values(self) -> list[Any]:
        """The values of this dimension in a parameter grid (raises SearchSpaceError)."""

    @abstractmethod
    def _body_json(self) -> dict[str, Any]:
        """The dimension's own keys in its JSON form (type, bounds, choices...)."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, **self._body_json()}
        if self.when:
            body["when"] = {c.name: list(c.values) for c in self.when}
        return body


def _numeric_value_problem(
    dim: FloatDimension | IntDimension, value: Any
) -> tuple[str, str] | None:
    name = dim.name
    if isinstance(dim, IntDimension) and not is_int(value):
        return "wrong_type", f"'{name}' must be an integer, not {type_name(value)}"
    if not is_number(value):
        return "wrong_type", f"'{name}' must be a number, not {type_name(value)}"
    if not dim.low <= value <= dim.high:
        return (
            "out_of_range",
            f"{fmt(value)} is outside the search space of '{name}' "
            f"[{fmt(dim.low)}, {fmt(dim.high)}]",
        )
    if dim.step is not None:
        if isinstance(dim, IntDimension):
            on_grid = (value - dim.low) % dim.step == 0
        else:
            on_grid = on_float_grid(dim.low, dim.step, float(value))
        if not on_grid:
            return (
                "off_grid",
                f"{fmt(value)} is not on the grid of '{name}' "
                f"({fmt(dim.low)} + k * {fmt(dim.step)})",
            )
    return None


@dataclass(frozen=True)
class FloatDimension(Dimension):
    """A real number in ``[low, high]``, log-uniform if ``log``, on a grid if ``step``."""

    type: ClassVar[str] = "float"

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def value_problem(self, value: Any) -> tuple[str, str] | None:
        return _numeric_value_problem(self, value)

    def suggest(self, trial: TrialLike) -> Any:
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        if self.log:
            raise SearchSpaceError([_log_grid_problem(self.name)])
        if self.step is None:
            raise SearchSpaceError(
                [
                    Problem(
                        (self.name,),
                        "float dimension without 'step' cannot be enumerated into a grid; "
                        "give 'step' or use 'categorical'",
                        "not_enumerable",
                    )
                ]
            )
        count = round((self.high - self.low) / self.step) + 1
        if count > MAX_GRID_VALUES:
            raise SearchSpaceError([_grid_too_large(self.name, count)])
        digits = max(_decimals(self.low), _decimals(self.step))
        values = [round(self.low + i * self.step, digits) for i in range(count)]
        values[-1] = min(values[-1], self.high)
        return values

    def _body_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            body["log"] = True
        if self.step is not None:
            body["step"] = self.step
        return body


@dataclass(frozen=True)
class IntDimension(Dimension):
    """An integer in ``[low, high]`` (inclusive), on a grid of ``step``, log-uniform if ``log``."""

    type: ClassVar[str] = "int"

    low: int
    high: int
    step: int | None = None
    log: bool = False

    def value_problem(self, value: Any) -> tuple[str, str] | None:
        return _numeric_value_problem(self, value)

    def suggest(self, trial: TrialLike) -> Any:
        return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)

    def grid_values(self) -> list[Any]:
        if self.log:
            raise SearchSpaceError([_log_grid_problem(self.name)])
        step = self.step or 1
        count = (self.high - self.low) // step + 1
        if count > MAX_GRID_VALUES:
            raise SearchSpaceError([_grid_too_large(self.name, count)])
        return list(range(self.low, self.high + 1, step))

    def _body_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            body["step"] = self.step
        if self.log:
            body["log"] = True
        return body


@dataclass(frozen=True)
class CategoricalDimension(Dimension):
    """One of ``choices``."""

    type: ClassVar[str] = "categorical"

    choices: tuple[Any, ...]

    def value_problem(self, value: Any) -> tuple[str, str] | None:
        if contains_value(self.choices, value):
            return None
        return (
            "invalid_choice",
            f"{fmt(value)} is not a choice of '{self.name}' "
            f"({', '.join(fmt(c) for c in self.choices)})",
        )

    def suggest(self, trial: TrialLike) -> Any:
        return trial.suggest_categorical(self.name, self.choices)

    def grid_values(self) -> list[Any]:
        return list(self.choices)

    def _body_json(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class FixedDimension(Dimension):
    """Always ``value`` (when active); never sampled."""

    type: ClassVar[str] = "fixed"

    value: Any

    def value_problem(self, value: Any) -> tuple[str, str] | None:
        if same_value(value, self.value):
            return None
        return (
            "fixed_mismatch",
            f"'{self.name}' is fixed to {fmt(self.value)} in the search space, not {fmt(value)}",
        )

    def suggest(self, trial: TrialLike) -> Any:
        return self.value

    def grid_values(self) -> list[Any]:
        return [self.value]

    def _body_json(self) -> dict[str, Any]:
        return {"value": self.value}


def _log_grid_problem(name: str) -> Problem:
    return Problem(
        (name,),
        "a 'log' dimension cannot be enumerated into a grid; "
        "list the values you want with 'categorical'",
        "not_enumerable",
    )


def _grid_too_large(name: str, count: int) -> Problem:
    return Problem(
        (name,),
        f"this dimension has {count} values, more than the {MAX_GRID_VALUES} a grid may "
        "enumerate; give a larger 'step' or use 'categorical'",
        "grid_too_large",
    )
