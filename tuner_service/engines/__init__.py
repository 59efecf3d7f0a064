"""Engines as plug-ins, control-plane half: one registered object per engine kind answers
everything core code would otherwise ask with ``if kind == ...`` (options and their problems,
what happens at study creation, whether lost trials go back to the engine, whether trials keep
a model, the engine's results view). The data-plane half is ``workers.engines``.

Adding an engine: a module with an :class:`EngineOptions` model and an :class:`EnginePlugin`
subclass, and one ``register(...)`` call (below for the built-in ones).
"""

from __future__ import annotations

from .base import EngineOptions, EnginePlugin
from .keras_tuner import KerasTunerEngine, KerasTunerEngineSpec
from .optuna import OptunaEngine, OptunaEngineSpec
from .registry import (
    EngineOptionsField,
    UnknownEngineError,
    engine_kinds,
    get_engine,
    register,
    unregister,
)
from .sklearn_grid import SklearnGridEngine, SklearnGridEngineSpec

register(OptunaEngine())
register(KerasTunerEngine())
register(SklearnGridEngine())

__all__ = [
    "EngineOptions",
    "EngineOptionsField",
    "EnginePlugin",
    "KerasTunerEngineSpec",
    "OptunaEngineSpec",
    "SklearnGridEngineSpec",
    "UnknownEngineError",
    "engine_kinds",
    "get_engine",
    "register",
    "unregister",
]
