"""Parsing and validation of a raw search space (the JSON language of docs/search-space.md).

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
:func:`parse_space` returns a frozen :class:`~search_spaces.space.SearchSpace` or raises
:class:`~search_spaces.problems.SearchSpaceError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .conditions import check_condition_values, find_cycles, parse_when, topological
from .dimensions import (
    DIMENSION_KEYS,
    DIMENSION_TYPES,
    MAX_CHOICES,
    MAX_DIMENSIONS,
    TYPES_FOR_KIND,
    CategoricalDimension,
    Condition,
    Dimension,
    FixedDimension,
    FloatDimension,
    IntDimension,
)
from .problems import Problem, ProblemCollector, SearchSpaceError
from .space import SearchSpace
from .values import (
    canonical,
    contains_value,
    did_you_mean,
    fmt,
    hp_value_problem,
    in_vocab_range,
    is_int,
    is_number,
    on_float_grid,
    or_list,
    range_text,
    type_name,
)
from .vocabulary import VOCABULARY, HyperParameter

__all__ = ["parse_space", "validate_space"]


def _parse_bounds(
    name: str, raw: Mapping[str, Any], dtype: str, hp: HyperParameter, out: ProblemCollector
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
        if want_int and not is_int(value):
            if is_number(value):
                msg = f"'{key}' of an int dimension must be an integer, not {fmt(value)}"
            else:
                msg = f"'{key}' must be an integer, not {type_name(value)}"
            out.add((name, key), msg, "wrong_type")
            continue
        if not is_number(value):
            out.add(
                (name, key),
                f"'{key}' must be a number, not {type_name(value)}"
                + (" (infinity and NaN are not allowed)" if isinstance(value, float) else ""),
                "wrong_type",
            )
            continue
        bounds[key] = value if want_int else float(value)
        if not in_vocab_range(hp, bounds[key]):
            out.add(
                (name, key),
                f"'{key}' {fmt(value)} is outside the allowed range of '{name}' {range_text(hp)}",
                "out_of_range",
            )

    log = raw.get("log", False)
    if not isinstance(log, bool):
        out.add((name, "log"), f"'log' must be true or false, not {fmt(log)}", "wrong_type")
        log = False

    step = raw.get("step")
    if step is not None:
        if want_int and not is_int(step):
            out.add(
                (name, "step"),
                f"'step' of an int dimension must be an integer, not {fmt(step)}",
                "wrong_type",
            )
            step = None
        elif not is_number(step):
            out.add(
                (name, "step"), f"'step' must be a number, not {type_name(step)}", "wrong_type"
            )
            step = None
        elif step <= 0:
            out.add(
                (name, "step"), f"'step' must be positive, not {fmt(step)}", "step_not_positive"
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
            f"'low' ({fmt(low)}) must be below 'high' ({fmt(high)}); "
            "use a 'fixed' dimension for a single value",
            "low_not_below_high",
        )
        low = high = None
    if log and low is not None and low <= 0:
        out.add(
            (name, "low"),
            f"a 'log' dimension needs 'low' > 0, not {fmt(low)}",
            "log_needs_positive_low",
        )
    if log and "step" in raw:
        out.add(
            (name, "step"),
            "'log' and 'step' cannot be combined; drop one of them",
            "log_with_step",
        )
    if step is not None and low is not None and high is not None:
        divides = (high - low) % step == 0 if want_int else on_float_grid(low, step, high)
        if not divides:
            out.add(
                (name, "step"),
                f"'step' {fmt(step)} does not divide the range {fmt(low)}..{fmt(high)}; "
                f"'high' - 'low' must be a multiple of 'step'",
                "step_not_dividing",
            )

    if len(out.problems) != before or low is None or high is None:
        return None
    if want_int:
        return IntDimension(name, low, high, step=None if step is None else int(step), log=log)
    return FloatDimension(name, low, high, log=log, step=step)


def _parse_categorical(
    name: str, raw: Mapping[str, Any], hp: HyperParameter, out: ProblemCollector
) -> Dimension | None:
    if "choices" not in raw:
        out.add((name,), "a 'categorical' dimension needs 'choices'", "missing_key")
        return None
    choices = raw["choices"]
    if not isinstance(choices, (list, tuple)):
        out.add(
            (name, "choices"), f"'choices' must be a list, not {type_name(choices)}", "wrong_type"
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
        why = hp_value_problem(hp, choice)
        if why is not None:
            out.add((name, "choices", i), why, "invalid_choice")
            continue
        value = canonical(hp, choice)
        if contains_value(kept, value):
            out.add((name, "choices", i), f"duplicate choice {fmt(choice)}", "duplicate_choice")
            continue
        kept.append(value)
    if len(out.problems) != before:
        return None
    return CategoricalDimension(name, tuple(kept))


def _parse_fixed(
    name: str, raw: Mapping[str, Any], hp: HyperParameter, out: ProblemCollector
) -> Dimension | None:
    if "value" not in raw:
        out.add((name,), "a 'fixed' dimension needs 'value'", "missing_key")
        return None
    why = hp_value_problem(hp, raw["value"])
    if why is not None:
        out.add((name, "value"), why, "invalid_value")
        return None
    return FixedDimension(name, canonical(hp, raw["value"]))


def _parse(raw: Any) -> tuple[SearchSpace | None, list[Problem]]:
    out = ProblemCollector()
    if not isinstance(raw, Mapping):
        out.add(
            (), f"the search space must be a JSON object, not {type_name(raw)}", "not_an_object"
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
                f"unknown hyperparameter '{name}'" + did_you_mean(str(name), VOCABULARY),
                "unknown_name",
            )
            continue
        hp = VOCABULARY[name]
        if not isinstance(body, Mapping):
            out.add(
                (name,),
                'a dimension must be an object like {"type": "categorical", "choices": '
                f"[...]}}, not {type_name(body)}",
                "dimension_not_object",
            )
            continue
        if "when" in body:
            conditions = parse_when(name, body["when"], out)
            if conditions is None:
                broken_when.add(name)
            else:
                whens[name] = conditions
        if "type" not in body:
            out.add(
                (name,),
                "missing 'type'; use one of " + or_list(DIMENSION_TYPES),
                "missing_type",
            )
            continue
        dtype = body["type"]
        if not isinstance(dtype, str) or dtype not in DIMENSION_TYPES:
            out.add(
                (name, "type"),
                f"unknown type {fmt(dtype)}"
                + (
                    (isinstance(dtype, str) and did_you_mean(dtype, DIMENSION_TYPES))
                    or "; use one of " + or_list(DIMENSION_TYPES)
                ),
                "unknown_type",
            )
            continue
        allowed_keys = DIMENSION_KEYS[dtype]
        for key in body:
            if key not in allowed_keys:
                out.add(
                    (name, str(key)),
                    f"unknown key '{key}' for type '{dtype}'"
                    + (
                        did_you_mean(str(key), allowed_keys)
                        or "; allowed: " + ", ".join(allowed_keys)
                    ),
                    "unknown_key",
                )
        if dtype not in TYPES_FOR_KIND[hp.kind]:
            kind_text = {"bool": "a boolean", "int": "an integer", "float": "a float"}.get(
                hp.kind, "a categorical"
            )
            out.add(
                (name, "type"),
                f"'{name}' is {kind_text} hyperparameter; a '{dtype}' dimension does not fit it "
                f"(use {or_list(TYPES_FOR_KIND[hp.kind])})",
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
        check_condition_values(name, conditions, raw[name]["when"], space, raw, out)
    graph = {name: [c.name for c in conds if c.name in raw] for name, conds in whens.items()}
    for cycle in find_cycles(graph):
        out.add(
            (cycle[0], "when"),
            "the conditions form a cycle: " + " -> ".join([*cycle, cycle[0]]),
            "condition_cycle",
        )

    if out.problems or broken_when:
        return None, out.problems
    return SearchSpace(topological(list(space.values()))), out.problems


def validate_space(raw: Any) -> list[Problem]:
    """Every problem of a raw search space (an empty list when it is valid)."""
    return _parse(raw)[1]


def parse_space(raw: Any) -> SearchSpace:
    """A :class:`SearchSpace` from its JSON form; raises SearchSpaceError with every problem."""
    space, problems = _parse(raw)
    if problems or space is None:
        raise SearchSpaceError(problems)
    return space
