"""Engines decide which parameters each trial gets; the trainer is shared by all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ClaimRunner, Engine, EngineFatalError, TrialHandle

if TYPE_CHECKING:
    from tuner_service.service import Services


def engine_for(kind: str, services: Services) -> Engine | ClaimRunner:
    """The engine of a study's ``engine.kind``.

    Raises:
        EngineFatalError: no engine of that kind is installed on this worker.
    """
    if kind == "optuna":
        from .optuna_engine import OptunaEngine

        return OptunaEngine(services)
    if kind == "keras_tuner":
        from .kt_engine import KerasTunerEngine

        return KerasTunerEngine(services)
    if kind == "sklearn_grid":
        from .grid_engine import SklearnGridEngine

        return SklearnGridEngine(services)
    raise EngineFatalError(f"this worker has no engine '{kind}'")


__all__ = ["ClaimRunner", "Engine", "EngineFatalError", "TrialHandle", "engine_for"]
