"""Names of the vocabulary in scikeras' ``KerasClassifier`` parameter routing, as the seed's
``GridSearchCV`` param_grid spells them: ``batch_size`` (fit), ``optimizer`` and
``optimizer__<arg>`` (compile), ``model__<name>`` (the model-building function)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Optimizer arguments, and the optimizers that take each.
OPTIMIZER_ARGS: dict[str, tuple[str, ...]] = {
    "learning_rate": ("adam", "adamw", "nadam", "sgd", "rmsprop", "adagrad"),
    "momentum": ("sgd", "rmsprop"),
    "beta_1": ("adam", "adamw", "nadam"),
}
TOP_LEVEL = ("batch_size", "optimizer")


def scikeras_name(name: str) -> str:
    """``dense_units`` -> ``model__dense_units``; ``learning_rate`` ->
    ``optimizer__learning_rate``; ``batch_size`` and ``optimizer`` stay."""
    if name in TOP_LEVEL:
        return name
    if name in OPTIMIZER_ARGS:
        return f"optimizer__{name}"
    return f"model__{name}"


def to_scikeras_params(params: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``params[name]`` under its scikeras name for each of ``names``; optimizer arguments the
    chosen optimizer does not take (``momentum`` for adam, ...) are left out."""
    optimizer = params.get("optimizer")
    out: dict[str, Any] = {}
    for name in names:
        takes = OPTIMIZER_ARGS.get(name)
        if takes is not None and optimizer is not None and optimizer not in takes:
            continue
        out[scikeras_name(name)] = params[name]
    return out
