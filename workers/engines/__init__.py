"""Engines as plug-ins, data-plane half: engine kind -> a factory of the worker's engine,
imported lazily (TensorFlow, Keras Tuner and scikeras load only when a study needs them).

The control-plane half of each kind is :mod:`tuner_service.engines`. Adding an engine: one
module here (a :class:`WorkerEngine`) and one ``register(kind, "module:Class")`` line (or a
call with the class itself, from the engine's own module).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Union

from .base import EngineFatalError, TrialHandle, WorkerEngine

if TYPE_CHECKING:
    from tuner_service.service import Services

EngineFactory = Callable[["Services"], WorkerEngine]

_FACTORIES: dict[str, Union[str, EngineFactory]] = {}  # noqa: UP007


def register(kind: str, factory: str | EngineFactory) -> None:
    """The worker engine of ``kind``: a factory ``(services) -> WorkerEngine``, or its
    ``"module:attribute"`` path, imported when a study of that kind is first run."""
    _FACTORIES[kind] = factory


def unregister(kind: str) -> None:
    _FACTORIES.pop(kind, None)


def engine_for(kind: str, services: Services) -> WorkerEngine:
    """A new engine of a study's ``engine.kind``.

    Raises:
        EngineFatalError: no engine of that kind is installed on this worker.
    """
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise EngineFatalError(f"this worker has no engine '{kind}'")
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _FACTORIES[kind] = factory
    return factory(services)


register("optuna", "workers.engines.optuna_engine:OptunaEngine")
register("keras_tuner", "workers.engines.keras_tuner:KerasTunerEngine")
register("sklearn_grid", "workers.engines.grid_engine:SklearnGridEngine")

__all__ = [
    "EngineFatalError",
    "TrialHandle",
    "WorkerEngine",
    "engine_for",
    "register",
    "unregister",
]
