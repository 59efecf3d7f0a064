"""The search-space language: parsing, validation, sampling and conversions.

A study's ``search_space`` is a JSON object mapping hyperparameter names of the vocabulary
(:mod:`search_spaces.vocabulary`) to *dimensions*::

    {
      "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": true},
      "dense_units":   {"type": "int", "low": 32, "high": 512, "step": 32},
      "activation":    {"type": "categorical", "choices": ["relu", "elu", "tanh"]},
      "batch_norm":    {"type": "fixed", "value": true},
      "momentum":      {"type": "float", "low": 0.0, "high": 0.99,
                        "when": {"optimizer": ["sgd", "rmsprop"]}}
    }

Every dimension may carry ``when``: it is *active* when, for every hyperparameter it names, that
hyperparameter's value (sampled, fixed, or its vocabulary default when it is not in the space,
or when it is itself inactive) is in the listed values. An inactive dimension takes its
vocabulary default and is not sampled. Every hyperparameter not named in the space takes its
default.

:func:`validate_space` lists every problem of a raw space (with its JSON path);
:func:`parse_space` returns a frozen :class:`SearchSpace` or raises
:class:`~search_spaces.problems.SearchSpaceError`.

Pure Python: nothing here imports TensorFlow, Keras, Optuna, a database or the network. Optuna
trials are used through the duck-typed :class:`TrialLike` protocol.
"""

from __future__ import annotations

import difflib
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from .problems import Problem, SearchSpaceError
from .vocabulary import VOCABULARY, HyperParameter, defaults

__all__ = [
    "DIMENSION_TYPES",
    "MAX_CHOICES",
    "MAX_DIMENSIONS",
    "MAX_GRID_VALUES",
    "CategoricalDimension",
    "Condition",
    "Dimension",
    "FixedDimension",
    "FloatDimension",
    "IntDimension",
    "SearchSpace",
    "TrialLike",
    "parse_space",
    "search_space_json_schema",
    "validate_space",
]

#: At most this many dimensions in one space.
MAX_DIMENSIONS = 64
#: At most this many choices in one categorical dimension.
MAX_CHOICES = 256
#: One dimension of a parameter grid enumerates at most this many values.
MAX_GRID_VALUES = 10_000

DIMENSION_TYPES = ("float", "int", "categorical", "fixed")

_KEYS: Mapping[str, tuple[str, ...]] = {
    "float": ("type", "low", "high", "log", "step", "when"),
    "int": ("type", "low", "high", "step", "log", "when"),
    "categorical": ("type", "choices", "when"),
    "fixed": ("type", "value", "when"),
}
# Which dimension types each vocabulary kind accepts.
_TYPES_FOR_KIND: Mapping[str, tuple[str, ...]] = {
    "float": ("float", "categorical", "fixed"),
    "int": ("int", "categorical", "fixed"),
    "bool": ("categorical", "fixed"),
    "categorical": ("categorical", "fixed"),
}
# Relative tolerance of float grids ("step" dividing the range, values on the grid).
_FLOAT_REL_TOL = 1e-9


class TrialLike(Protocol):
    """The part of ``optuna.trial.Trial`` that :meth:`SearchSpace.sample` uses."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """A value as a person reads it in JSON terms ('relu', true, null, 0.1)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return repr(value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    """An int or a finite float, but not a bool (bool is a subclass of int)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse booleans with the numbers 0 and 1."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, str) != isinstance(b, str):
        return False
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic objects
        return False


def _contains(values: Sequence[Any], value: Any) -> bool:
    return any(_same(value, v) for v in values)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _or_list(items: Sequence[str]) -> str:
    quoted = [f"'{i}'" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _range_text(hp: HyperParameter) -> str:
    close = ")" if hp.high_exclusive else "]"
    return f"[{_fmt(hp.low)}, {_fmt(hp.high)}{close}"


def _in_vocab_range(hp: HyperParameter, value: float) -> bool:
    if hp.low is not None and value < hp.low:
        return False
    if hp.high is not None:
        return value < hp.high if hp.high_exclusive else value <= hp.high
    return True


def _allowed_text(hp: HyperParameter) -> str:
    """What values a hyperparameter may take, in words."""
    if hp.kind == "bool":
        return "true or false"
    if hp.kind == "categorical":
        return "one of " + ", ".join(_fmt(c) for c in hp.choices or ())
    kind = "an integer" if hp.kind == "int" else "a number"
    return f"{kind} in {_range_text(hp)}"


def _hp_value_problem(hp: HyperParameter, value: Any) -> str | None:
    """Why ``value`` is not a value the hyperparameter can ever take (None when it can)."""
    ok: bool
    if hp.kind == "bool":
        ok = isinstance(value, bool)
    elif hp.kind == "categorical":
        ok = _contains(hp.choices or (), value)
    elif hp.kind == "int":
        ok = _is_int(value) and _in_vocab_range(hp, value)
        if ok is False and _is_number(value) and not _is_int(value):
            return f"{_fmt(value)} is not an integer; '{hp.name}' takes {_allowed_text(hp)}"
    else:
        ok = _is_number(value) and _in_vocab_range(hp, float(value))
    if ok:
        return None
    return f"{_fmt(value)} is not allowed for '{hp.name}', which takes {_allowed_text(hp)}"


def _canonical(hp: HyperParameter, value: Any) -> Any:
    """Ints given for float hyperparameters become floats (JSON does not tell 1 from 1.0)."""
    if hp.kind == "float" and _is_int(value):
        return float(value)
    return value


def _on_float_grid(low: float, step: float, value: float) -> bool:
    ratio = (value - low) / step
    return abs(ratio - round(ratio)) <= _FLOAT_REL_TOL * max(1.0, abs(ratio))


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
        return self.name in params and _contains(self.values, params[self.name])


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
        return self.conditional and _same(value, self.default)

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
    if isinstance(dim, IntDimension) and not _is_int(value):
        return "wrong_type", f"'{name}' must be an integer, not {_type_name(value)}"
    if not _is_number(value):
        return "wrong_type", f"'{name}' must be a number, not {_type_name(value)}"
    if not dim.low <= value <= dim.high:
        return (
            "out_of_range",
            f"{_fmt(value)} is outside the search space of '{name}' "
            f"[{_fmt(dim.low)}, {_fmt(dim.high)}]",
        )
    if dim.step is not None:
        if isinstance(dim, IntDimension):
            on_grid = (value - dim.low) % dim.step == 0
        else:
            on_grid = _on_float_grid(dim.low, dim.step, float(value))
        if not on_grid:
            return (
                "off_grid",
                f"{_fmt(value)} is not on the grid of '{name}' "
                f"({_fmt(dim.low)} + k * {_fmt(dim.step)})",
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
        if _contains(self.choices, value):
            return None
        return (
            "invalid_choice",
            f"{_fmt(value)} is not a choice of '{self.name}' "
            f"({', '.join(_fmt(c) for c in self.choices)})",
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
        if _same(value, self.value):
            return None
        return (
            "fixed_mismatch",
            f"'{self.name}' is fixed to {_fmt(self.value)} in the search space, not {_fmt(value)}",
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


# --------------------------------------------------------------------------------------------
# The space
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: its dimensions, dependencies before dependants.

    Build one with :func:`parse_space`. ``SearchSpace()`` is the empty space (every
    hyperparameter at its default).
    """

    dimensions: tuple[Dimension, ...] = ()
    _index: Mapping[str, Dimension] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {d.name: d for d in self.dimensions})

    # --- container protocol -----------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Dimension:
        return self._index[name]

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.dimensions)

    # --- values -------------------------------------------------------------------------------

    def sample(self, trial: TrialLike) -> dict[str, Any]:
        """Sample a full parameter set, define-by-run (e.g. with an ``optuna.Trial``).

        Only active, non-fixed dimensions are suggested; fixed dimensions take their value,
        inactive ones and every hyperparameter outside the space their default.
        """
        params = defaults()
        for dim in self.dimensions:
            if dim.is_active(params):
                params[dim.name] = _canonical(dim.hyperparameter, dim.suggest(trial))
        return params

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full parameter set for the values ``params`` gives the space's dimensions.

        Missing values take their default, fixed dimensions their value, inactive conditionals
        their default; values for names outside the space are ignored (such hyperparameters
        always take their default). No validation: see :meth:`validate_params`.
        """
        full = defaults()
        for dim in self.dimensions:
            if not dim.is_active(full):
                continue
            if isinstance(dim, FixedDimension):
                full[dim.name] = dim.value
            elif dim.name in params:
                full[dim.name] = _canonical(dim.hyperparameter, params[dim.name])
        return full

    def active_names(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The dimensions active for ``params`` (resolved first)."""
        full = self.resolve(params)
        return tuple(d.name for d in self.dimensions if d.is_active(full))

    def validate_params(self, params: Any) -> list[Problem]:
        """Every problem of a user-given configuration (a warm start) for this space.

        Only hyperparameters of the space may be named; each value must lie in its dimension;
        every active, non-fixed dimension must be given (inactive ones may be left out, and a
        value given for an inactive one is ignored). Paths are relative to ``params``.
        """
        if not isinstance(params, Mapping):
            return [Problem((), "the parameters must be a JSON object", "not_an_object")]
        problems: list[Problem] = []
        good: dict[str, Any] = {}
        for name, value in params.items():
            if not isinstance(name, str) or name not in VOCABULARY:
                problems.append(
                    Problem(
                        (str(name),),
                        f"unknown hyperparameter '{name}'" + _suggest(str(name), self.names),
                        "unknown_name",
                    )
                )
                continue
            if name not in self._index:
                problems.append(
                    Problem(
                        (name,),
                        f"'{name}' is not in the search space; only its hyperparameters "
                        f"({', '.join(self.names) or 'none'}) may be given",
                        "not_in_space",
                    )
                )
                continue
            issue = self._index[name].value_problem(value)
            if issue is not None:
                problems.append(Problem((name,), issue[1], issue[0]))
            else:
                good[name] = value
        full = self.resolve(good)
        for dim in self.dimensions:
            if isinstance(dim, FixedDimension) or dim.name in params:
                continue
            if dim.is_active(full):
                problems.append(
                    Problem(
                        (dim.name,),
                        f"missing a value for '{dim.name}', which is in the search space"
                        + (" and active for these parameters" if dim.when else ""),
                        "missing_value",
                    )
                )
        return problems

    # --- grids ------------------------------------------------------------------------------

    def to_param_grid(self) -> dict[str, list[Any]]:
        """A scikit-learn style grid: each dimension's name -> the list of its values.

        Categorical -> its choices; fixed -> ``[value]``; int -> ``low..high`` by ``step``
        (default 1); float -> ``low..high`` by ``step`` (``step`` required). ``log`` dimensions
        and floats without ``step`` cannot be enumerated: SearchSpaceError lists each.

        Conditional dimensions are included like the others: the grid enumerates every
        combination, and :meth:`resolve` applies the conditions to a grid point (inactive
        conditionals fall back to their default, so several grid points may resolve to the
        same parameters; :meth:`grid_points` yields each distinct one once).
        """
        grid: dict[str, list[Any]] = {}
        problems: list[Problem] = []
        for dim in self.dimensions:
            try:
                grid[dim.name] = dim.grid_values()
            except SearchSpaceError as exc:
                problems.extend(exc.problems)
        if problems:
            raise SearchSpaceError(problems)
        return grid

    def grid_size(self) -> int:
        """Points in :meth:`to_param_grid` (the product of its lists' lengths)."""
        return math.prod(len(v) for v in self.to_param_grid().values())

    def grid_points(self) -> Iterator[dict[str, Any]]:
        """Each distinct resolved full parameter set of the grid, in grid order."""
        grid = self.to_param_grid()
        names = list(grid)
        seen: set[tuple[tuple[str, str], ...]] = set()
        for combo in itertools.product(*(grid[n] for n in names)):
            full = self.resolve(dict(zip(names, combo, strict=True)))
            key = tuple((n, repr(full[n])) for n in names)
            if key in seen:
                continue
            seen.add(key)
            yield full

    # --- serialisation ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (parses back to an equal space)."""
        return {d.name: d.to_json() for d in self.dimensions}


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: tuple[str | int, ...], message: str, code: str) -> None:
        self.problems.append(Problem(path, message, code))


def _parse_bounds(
    name: str, raw: Mapping[str, Any], dtype: str, hp: HyperParameter, out: _Collector
) -> Dimension | None:
    """Parse a float or int dimension (without ``when``)."""
    before = len(out.problems)
    want_int = dtype == "int"
    bounds: dict[str, Any] = {}
    for key in ("low", "high"):
        if key not in raw:
            out.add((name,), f"a '{dtype}' dimension needs '{key}'", "missing_key")
            continue
        value = raw[key]
        if want_int and not _is_int(value):
            if _is_number(value):
                msg = f"'{key}' of an int dimension must be an integer, not {_fmt(value)}"
            else:
                msg = f"'{key}' must be an integer, not {_type_name(value)}"
            out.add((name, key), msg, "wrong_type")
            continue
        if not _is_number(value):
            out.add(
                (name, key),
                f"'{key}' must be a number, not {_type_name(value)}"
                + (" (infinity and NaN are not allowed)" if isinstance(value, float) else ""),
                "wrong_type",
            )
            continue
        bounds[key] = value if want_int else float(value)
        if not _in_vocab_range(hp, bounds[key]):
            out.add(
                (name, key),
                f"'{key}' {_fmt(value)} is outside the allowed range of '{name}' {_range_text(hp)}",
                "out_of_range",
            )

    log = raw.get("log", False)
    if not isinstance(log, bool):
        out.add((name, "log"), f"'log' must be true or false, not {_fmt(log)}", "wrong_type")
        log = False

    step = raw.get("step")
    if step is not None:
        if want_int and not _is_int(step):
            out.add(
                (name, "step"),
                f"'step' of an int dimension must be an integer, not {_fmt(step)}",
                "wrong_type",
            )
            step = None
        elif not _is_number(step):
            out.add(
                (name, "step"), f"'step' must be a number, not {_type_name(step)}", "wrong_type"
            )
            step = None
        elif step <= 0:
            out.add(
                (name, "step"), f"'step' must be positive, not {_fmt(step)}", "step_not_positive"
            )
            step = None
        elif not want_int:
            step = float(step)
    elif "step" in raw:
        out.add((name, "step"), "'step' must be a number, not null", "wrong_type")

    low, high = bounds.get("low"), bounds.get("high")
    if low is not None and high is not None and low >= high:
        out.add(
            (name, "low"),
            f"'low' ({_fmt(low)}) must be below 'high' ({_fmt(high)}); "
            "use a 'fixed' dimension for a single value",
            "low_not_below_high",
        )
        low = high = None
    if log and low is not None and low <= 0:
        out.add(
            (name, "low"),
            f"a 'log' dimension needs 'low' > 0, not {_fmt(low)}",
            "log_needs_positive_low",
        )
    if log and "step" in raw:
        out.add(
            (name, "step"),
            "'log' and 'step' cannot be combined; drop one of them",
            "log_with_step",
        )
    if step is not None and low is not None and high is not None:
        divides = (high - low) % step == 0 if want_int else _on_float_grid(low, step, high)
        if not divides:
            out.add(
                (name, "step"),
                f"'step' {_fmt(step)} does not divide the range {_fmt(low)}..{_fmt(high)}; "
                f"'high' - 'low' must be a multiple of 'step'",
                "step_not_dividing",
            )

    if len(out.problems) != before or low is None or high is None:
        return None
    if want_int:
        return IntDimension(name, low, high, step=None if step is None else int(step), log=log)
    return FloatDimension(name, low, high, log=log, step=step)


def _parse_categorical(
    name: str, raw: Mapping[str, Any], hp: HyperParameter, out: _Collector
) -> Dimension | None:
    if "choices" not in raw:
        out.add((name,), "a 'categorical' dimension needs 'choices'", "missing_key")
        return None
    choices = raw["choices"]
    if not isinstance(choices, (list, tuple)):
        out.add(
            (name, "choices"), f"'choices' must be a list, not {_type_name(choices)}", "wrong_type"
        )
        return None
    if not choices:
        out.add((name, "choices"), "'choices' is empty; give at least one value", "no_choices")
        return None
    if len(choices) > MAX_CHOICES:
        out.add(
            (name, "choices"),
            f"'choices' has {len(choices)} values, more than the limit of {MAX_CHOICES}",
            "too_many_choices",
        )
        return None
    before = len(out.problems)
    kept: list[Any] = []
    for i, choice in enumerate(choices):
        why = _hp_value_problem(hp, choice)
        if why is not None:
            out.add((name, "choices", i), why, "invalid_choice")
            continue
        value = _canonical(hp, choice)
        if _contains(kept, value):
            out.add((name, "choices", i), f"duplicate choice {_fmt(choice)}", "duplicate_choice")
            continue
        kept.append(value)
    if len(out.problems) != before:
        return None
    return CategoricalDimension(name, tuple(kept))


def _parse_fixed(
    name: str, raw: Mapping[str, Any], hp: HyperParameter, out: _Collector
) -> Dimension | None:
    if "value" not in raw:
        out.add((name,), "a 'fixed' dimension needs 'value'", "missing_key")
        return None
    why = _hp_value_problem(hp, raw["value"])
    if why is not None:
        out.add((name, "value"), why, "invalid_value")
        return None
    return FixedDimension(name, _canonical(hp, raw["value"]))


def _parse_when(name: str, raw: Any, out: _Collector) -> tuple[Condition, ...] | None:
    """Parse a ``when`` object structurally (impossible values are checked later)."""
    path: tuple[str | int, ...] = (name, "when")
    if not isinstance(raw, Mapping):
        out.add(
            path,
            "'when' must be an object mapping hyperparameter names to lists of values, "
            f"not {_type_name(raw)}",
            "when_not_object",
        )
        return None
    conditions: list[Condition] = []
    ok = True
    for ref, values in raw.items():
        if ref == name:
            out.add((*path, ref), f"'{name}' cannot depend on itself", "when_self")
            ok = False
            continue
        if not isinstance(ref, str) or ref not in VOCABULARY:
            out.add(
                (*path, str(ref)),
                f"condition on unknown hyperparameter '{ref}'" + _suggest(str(ref), VOCABULARY),
                "when_unknown_name",
            )
            ok = False
            continue
        if not isinstance(values, (list, tuple)):
            out.add(
                (*path, ref),
                f"the condition on '{ref}' must be a list of values, not {_type_name(values)}",
                "when_not_list",
            )
            ok = False
            continue
        if not values:
            out.add(
                (*path, ref),
                f"the condition on '{ref}' lists no values, so it can never hold",
                "when_empty",
            )
            ok = False
            continue
        conditions.append(Condition(ref, tuple(_canonical(VOCABULARY[ref], v) for v in values)))
    return tuple(conditions) if ok else None


def _check_condition_values(
    name: str,
    conditions: Sequence[Condition],
    raw_when: Mapping[str, Any],
    space: Mapping[str, Dimension],
    in_raw: Mapping[str, Any],
    out: _Collector,
) -> None:
    """Report each value a condition lists that its hyperparameter can never take."""
    for cond in conditions:
        hp = VOCABULARY[cond.name]
        raw_values = raw_when[cond.name]
        for i, value in enumerate(cond.values):
            path: tuple[str | int, ...] = (name, "when", cond.name, i)
            raw_value = raw_values[i]
            why = _hp_value_problem(hp, value)
            if why is not None:
                out.add(path, f"impossible condition: {why}", "impossible_condition")
                continue
            # A hyperparameter outside the space keeps its default, so a condition on another
            # of its valid values leaves this dimension inactive: allowed, e.g. momentum for
            # sgd/rmsprop in a space that does not tune the optimizer (yet).
            if cond.name in space and not space[cond.name].can_take(value):
                out.add(
                    path,
                    f"impossible condition: '{cond.name}' never takes {_fmt(raw_value)} "
                    f"in this search space",
                    "impossible_condition",
                )


def _find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every elementary cycle reachable in ``graph`` (found by DFS), each once."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                start = cycle.index(min(cycle))
                canon = tuple(cycle[start:] + cycle[:start])
                if canon not in seen:
                    seen.add(canon)
                    cycles.append(list(canon))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return cycles


def _topological(dims: Sequence[Dimension]) -> tuple[Dimension, ...]:
    """Dependencies before dependants; otherwise the given order (the graph is acyclic)."""
    by_name = {d.name: d for d in dims}
    done: set[str] = set()
    ordered: list[Dimension] = []

    def place(dim: Dimension) -> None:
        if dim.name in done:
            return
        done.add(dim.name)
        for ref in dim.depends_on:
            if ref in by_name:
                place(by_name[ref])
        ordered.append(dim)

    for dim in dims:
        place(dim)
    return tuple(ordered)


def _parse(raw: Any) -> tuple[SearchSpace | None, list[Problem]]:
    out = _Collector()
    if not isinstance(raw, Mapping):
        out.add(
            (), f"the search space must be a JSON object, not {_type_name(raw)}", "not_an_object"
        )
        return None, out.problems
    if len(raw) > MAX_DIMENSIONS:
        out.add(
            (),
            f"the search space has {len(raw)} dimensions, more than the limit of {MAX_DIMENSIONS}",
            "too_many_dimensions",
        )

    bodies: dict[str, Dimension] = {}
    whens: dict[str, tuple[Condition, ...]] = {}
    broken_when: set[str] = set()
    for name, body in raw.items():
        if not isinstance(name, str) or name not in VOCABULARY:
            out.add(
                (str(name),),
                f"unknown hyperparameter '{name}'" + _suggest(str(name), VOCABULARY),
                "unknown_name",
            )
            continue
        hp = VOCABULARY[name]
        if not isinstance(body, Mapping):
            out.add(
                (name,),
                'a dimension must be an object like {"type": "categorical", "choices": '
                f"[...]}}, not {_type_name(body)}",
                "dimension_not_object",
            )
            continue
        if "when" in body:
            conditions = _parse_when(name, body["when"], out)
            if conditions is None:
                broken_when.add(name)
            else:
                whens[name] = conditions
        if "type" not in body:
            out.add(
                (name,),
                "missing 'type'; use one of " + _or_list(DIMENSION_TYPES),
                "missing_type",
            )
            continue
        dtype = body["type"]
        if not isinstance(dtype, str) or dtype not in DIMENSION_TYPES:
            out.add(
                (name, "type"),
                f"unknown type {_fmt(dtype)}"
                + (
                    (isinstance(dtype, str) and _suggest(dtype, DIMENSION_TYPES))
                    or "; use one of " + _or_list(DIMENSION_TYPES)
                ),
                "unknown_type",
            )
            continue
        allowed_keys = _KEYS[dtype]
        for key in body:
            if key not in allowed_keys:
                out.add(
                    (name, str(key)),
                    f"unknown key '{key}' for type '{dtype}'"
                    + (_suggest(str(key), allowed_keys) or "; allowed: " + ", ".join(allowed_keys)),
                    "unknown_key",
                )
        if dtype not in _TYPES_FOR_KIND[hp.kind]:
            kind_text = {"bool": "a boolean", "int": "an integer", "float": "a float"}.get(
                hp.kind, "a categorical"
            )
            out.add(
                (name, "type"),
                f"'{name}' is {kind_text} hyperparameter; a '{dtype}' dimension does not fit it "
                f"(use {_or_list(_TYPES_FOR_KIND[hp.kind])})",
                "incompatible_type",
            )
            continue
        dim: Dimension | None
        if dtype in ("float", "int"):
            dim = _parse_bounds(name, body, dtype, hp, out)
        elif dtype == "categorical":
            dim = _parse_categorical(name, body, hp, out)
        else:
            dim = _parse_fixed(name, body, hp, out)
        if dim is not None:
            bodies[name] = dim

    # Conditions: impossible values (against the parsed dimensions), then cycles.
    space: dict[str, Dimension] = {
        name: replace(dim, when=whens.get(name, ())) for name, dim in bodies.items()
    }
    for name, conditions in whens.items():
        _check_condition_values(name, conditions, raw[name]["when"], space, raw, out)
    graph = {name: [c.name for c in conds if c.name in raw] for name, conds in whens.items()}
    for cycle in _find_cycles(graph):
        out.add(
            (cycle[0], "when"),
            "the conditions form a cycle: " + " -> ".join([*cycle, cycle[0]]),
            "condition_cycle",
        )

    if out.problems or broken_when:
        return None, out.problems
    return SearchSpace(_topological(list(space.values()))), out.problems


def validate_space(raw: Any) -> list[Problem]:
    """Every problem of a raw search space (an empty list when it is valid)."""
    return _parse(raw)[1]


def parse_space(raw: Any) -> SearchSpace:
    """A :class:`SearchSpace` from its JSON form; raises SearchSpaceError with every problem."""
    space, problems = _parse(raw)
    if problems or space is None:
        raise SearchSpaceError(problems)
    return space


# --------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------


def _value_schema(hp: HyperParameter) -> dict[str, Any]:
    if hp.kind == "bool":
        return {"type": "boolean"}
    if hp.kind == "categorical":
        return {"enum": list(hp.choices or ())}
    schema: dict[str, Any] = {"type": "integer" if hp.kind == "int" else "number"}
    if hp.low is not None:
        schema["minimum"] = hp.low
    if hp.high is not None:
        schema["exclusiveMaximum" if hp.high_exclusive else "maximum"] = hp.high
    return schema


def _when_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Active only when every named hyperparameter's value is in its list.",
        "propertyNames": {"enum": list(VOCABULARY)},
        "additionalProperties": {
            "type": "array",
            "minItems": 1,
            "items": {"type": ["string", "number", "integer", "boolean"]},
        },
    }


def _dimension_schemas(hp: HyperParameter) -> list[dict[str, Any]]:
    value = _value_schema(hp)
    shapes: list[dict[str, Any]] = []
    for dtype in _TYPES_FOR_KIND[hp.kind]:
        props: dict[str, Any] = {"type": {"const": dtype}}
        required = ["type"]
        if dtype in ("float", "int"):
            props["low"] = value
            props["high"] = value
            props["log"] = {"type": "boolean", "default": False}
            props["step"] = {
                "type": "integer" if dtype == "int" else "number",
                "exclusiveMinimum": 0,
            }
            required += ["low", "high"]
        elif dtype == "categorical":
            props["choices"] = {
                "type": "array",
                "items": value,
                "minItems": 1,
                "maxItems": MAX_CHOICES,
                "uniqueItems": True,
            }
            required.append("choices")
        else:
            props["value"] = value
            required.append("value")
        props["when"] = _when_schema()
        shapes.append(
            {
                "title": f"{hp.name}: {dtype}",
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        )
    return shapes


def search_space_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the search-space language.

    Self-contained (no ``$ref``), so it can be embedded in an OpenAPI document. Rules that span
    fields (``low < high``, ``step`` dividing the range, conditions, cycles) are checked by
    :func:`validate_space`, not by the schema.
    """
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SearchSpace",
        "description": (
            "Hyperparameter name -> dimension (float, int, categorical or fixed). "
            "Hyperparameters not named take their default. See docs/search-space.md."
        ),
        "type": "object",
        "maxProperties": MAX_DIMENSIONS,
        "additionalProperties": False,
        "properties": {
            hp.name: {
                "description": f"{hp.description} Default: {_fmt(hp.default)}.",
                "oneOf": _dimension_schemas(hp),
            }
            for hp in VOCABULARY.values()
        },
    }
