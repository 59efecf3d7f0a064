"""Search spaces as Keras Tuner ``HyperParameters``, and back.

:func:`to_keras_tuner` registers every dimension of a :class:`~search_spaces.SearchSpace`
(``Float``/``Int`` with ``step`` and ``sampling="log"``, ``Choice``, ``Fixed``; a boolean
categorical becomes ``Boolean``, since ``Choice`` would turn booleans into ints), each with the
vocabulary default as its Keras Tuner default when the dimension contains it. A dimension's
``when`` becomes ``hp.conditional_scope(parent, values)`` for a condition on a hyperparameter
registered in ``hp``; with several such conditions the hyperparameter gets one ``Parent``
condition per parent (Keras Tuner cannot nest scopes on unrelated parents). A condition on a
hyperparameter outside the space is constant (that hyperparameter is always its default), so it
is evaluated here: a dimension whose constant condition fails is never active and is not
registered at all (a valid space has no such
condition; see ``impossible_condition``).

:func:`params_from_keras_tuner` turns ``hp.values`` (Keras Tuner keeps only *active* values
there) into the full parameter set, like :meth:`SearchSpace.resolve`: inactive conditionals and
every hyperparameter outside the space take their default.

One difference of semantics: in the search-space language an *inactive* parent takes its default,
and a child's condition is checked against that default; in Keras Tuner a condition on an
inactive parent never holds. So a child conditioned on a conditional parent, with the parent's
default among the listed values, is inactive in Keras Tuner while the parent is inactive;
:func:`params_from_keras_tuner` then gives it its default (what ``resolve`` gives a missing
value).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from search_spaces import DEFAULTS, SearchSpace
from search_spaces.dimensions import (
    CategoricalDimension,
    Condition,
    Dimension,
    FixedDimension,
    FloatDimension,
    IntDimension,
)

if TYPE_CHECKING:
    import keras_tuner

__all__ = ["params_from_keras_tuner", "to_keras_tuner"]


def _kt_default(dim: Dimension) -> Any:
    """The vocabulary default when the dimension contains it, else None (Keras Tuner's own)."""
    default = dim.default
    return default if dim.value_problem(default) is None else None


def _register(hp: keras_tuner.HyperParameters, dim: Dimension) -> None:
    if isinstance(dim, FloatDimension):
        hp.Float(
            dim.name,
            min_value=dim.low,
            max_value=dim.high,
            step=dim.step,
            sampling="log" if dim.log else "linear",
            default=_kt_default(dim),
        )
    elif isinstance(dim, IntDimension):
        hp.Int(
            dim.name,
            min_value=dim.low,
            max_value=dim.high,
            step=dim.step,
            sampling="log" if dim.log else "linear",
            default=_kt_default(dim),
        )
    elif isinstance(dim, CategoricalDimension) and dim.hyperparameter.kind == "bool":
        # Keras Tuner's Choice turns booleans into ints: use Boolean (or Fixed for one value).
        if len(dim.choices) == 1:
            hp.Fixed(dim.name, dim.choices[0])
        else:
            hp.Boolean(dim.name, default=bool(dim.default))
    elif isinstance(dim, CategoricalDimension):
        hp.Choice(dim.name, list(dim.choices), default=_kt_default(dim))
    elif isinstance(dim, FixedDimension):
        hp.Fixed(dim.name, dim.value)
    else:  # pragma: no cover - every dimension type is handled above
        raise TypeError(f"unknown dimension type {type(dim).__name__}")


def _registered(hp: keras_tuner.HyperParameters, name: str) -> bool:
    return any(p.name == name for p in hp.space)


def to_keras_tuner(
    space: SearchSpace, hp: keras_tuner.HyperParameters | None = None
) -> keras_tuner.HyperParameters:
    """Register every dimension of ``space`` in ``hp`` (a new ``HyperParameters`` if None)."""
    import keras_tuner

    if hp is None:
        hp = keras_tuner.HyperParameters()
    for dim in space.dimensions:  # dependencies come first
        dynamic = [c for c in dim.when if _registered(hp, c.name)]
        static = [c for c in dim.when if not _registered(hp, c.name)]
        if not all(c.holds(DEFAULTS) for c in static):
            continue  # never active
        if len(dynamic) <= 1:
            with contextlib.ExitStack() as scope:
                for cond in dynamic:
                    scope.enter_context(hp.conditional_scope(cond.name, list(cond.values)))
                _register(hp, dim)
        else:
            _register_with_conditions(hp, dim, dynamic)
    return hp


def _register_with_conditions(
    hp: keras_tuner.HyperParameters, dim: Dimension, conditions: Sequence[Condition]
) -> None:
    """Register ``dim`` active only when every condition holds.

    Nested ``conditional_scope`` blocks cannot express this: Keras Tuner requires the parent of
    an inner scope to be registered under the outer scope's conditions. So the hyperparameter is
    built with its list of ``Parent`` conditions through Keras Tuner's (public) config format and
    merged in.
    """
    import keras_tuner

    scratch = keras_tuner.HyperParameters()
    _register(scratch, dim)
    config = scratch.space[0].get_config()
    config["conditions"] = [
        {"class_name": "Parent", "config": {"name": c.name, "values": list(c.values)}}
        for c in conditions
    ]
    hp.merge([type(scratch.space[0]).from_config(config)], overwrite=False)


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def params_from_keras_tuner(space: SearchSpace, hp_values: Mapping[str, Any]) -> dict[str, Any]:
    """The full parameter set for Keras Tuner values (e.g. ``hp.values`` or a trial's)."""
    values = {name: _plain(v) for name, v in hp_values.items() if name in space}
    for name, value in values.items():
        kind = space[name].hyperparameter.kind
        if kind == "int" and isinstance(value, float) and value.is_integer():
            values[name] = int(value)
        elif kind == "bool" and isinstance(value, int):
            values[name] = bool(value)
    return space.resolve(values)
