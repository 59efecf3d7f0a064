"""How values of the vocabulary read, compare and check, shared by the search-space modules.

Messages speak JSON (``'relu'``, ``true``, ``null``); comparisons never confuse booleans with the
numbers 0 and 1.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .vocabulary import HyperParameter

# Relative tolerance of float grids ("step" dividing the range, values on the grid).
_FLOAT_REL_TOL = 1e-9


def fmt(value: Any) -> str:
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


def type_name(value: Any) -> str:
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


def is_number(value: Any) -> bool:
    """An int or a finite float, but not a bool (bool is a subclass of int)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Equality that does not confuse booleans with the numbers 0 and 1."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, str) != isinstance(b, str):
        return False
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic objects
        return False


def contains_value(values: Sequence[Any], value: Any) -> bool:
    return any(same_value(value, v) for v in values)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def or_list(items: Sequence[str]) -> str:
    quoted = [f"'{i}'" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def range_text(hp: HyperParameter) -> str:
    close = ")" if hp.high_exclusive else "]"
    return f"[{fmt(hp.low)}, {fmt(hp.high)}{close}"


def in_vocab_range(hp: HyperParameter, value: float) -> bool:
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
        return "one of " + ", ".join(fmt(c) for c in hp.choices or ())
    kind = "an integer" if hp.kind == "int" else "a number"
    return f"{kind} in {range_text(hp)}"


def hp_value_problem(hp: HyperParameter, value: Any) -> str | None:
    """Why ``value`` is not a value the hyperparameter can ever take (None when it can)."""
    ok: bool
    if hp.kind == "bool":
        ok = isinstance(value, bool)
    elif hp.kind == "categorical":
        ok = contains_value(hp.choices or (), value)
    elif hp.kind == "int":
        ok = is_int(value) and in_vocab_range(hp, value)
        if ok is False and is_number(value) and not is_int(value):
            return f"{fmt(value)} is not an integer; '{hp.name}' takes {_allowed_text(hp)}"
    else:
        ok = is_number(value) and in_vocab_range(hp, float(value))
    if ok:
        return None
    return f"{fmt(value)} is not allowed for '{hp.name}', which takes {_allowed_text(hp)}"


def canonical(hp: HyperParameter, value: Any) -> Any:
    """Ints given for float hyperparameters become floats (JSON does not tell 1 from 1.0)."""
    if hp.kind == "float" and is_int(value):
        return float(value)
    return value


def on_float_grid(low: float, step: float, value: float) -> bool:
    ratio = (value - low) / step
    if not math.isfinite(ratio):  # a step so small the grid has no countable points
        return False
    return abs(ratio - round(ratio)) <= _FLOAT_REL_TOL * max(1.0, abs(ratio))
