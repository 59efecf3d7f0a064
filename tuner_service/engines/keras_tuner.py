"""The ``keras_tuner`` engine's control-plane half: a Keras Tuner oracle (random, bayesian,
hyperband, grid) decides every trial; its options are checked here without importing Keras
Tuner. The oracle's state lives in the service database (data plane:
``workers/engines/keras_tuner``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from ..errors import Problem
from .base import EngineOptions, EnginePlugin, grid_problems

if TYPE_CHECKING:
    from ..spec import StudySpec

KT_ALGORITHMS = ("random", "bayesian", "hyperband", "grid")
#: Keras Tuner oracle options a study may set, per algorithm, with a check of each value (the
#: objective, max_trials, max_epochs, seed and hyperparameters come from the study spec).
_KT_COMMON_OPTIONS = ("max_retries_per_trial", "max_consecutive_failed_trials")
KT_OPTIONS: dict[str, tuple[str, ...]] = {
    "random": _KT_COMMON_OPTIONS,
    "bayesian": ("num_initial_points", "alpha", "beta", *_KT_COMMON_OPTIONS),
    "hyperband": ("factor", "hyperband_iterations", *_KT_COMMON_OPTIONS),
    "grid": _KT_COMMON_OPTIONS,
}
_KT_OPTION_CHECKS: dict[str, tuple[str, Any]] = {
    "num_initial_points": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
    "alpha": ("a number > 0", lambda v: _is_num(v) and v > 0),
    "beta": ("a number >= 0", lambda v: _is_num(v) and v >= 0),
    "factor": ("an integer >= 2", lambda v: _is_int(v) and v >= 2),
    "hyperband_iterations": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
    "max_retries_per_trial": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "max_consecutive_failed_trials": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


class KerasTunerEngineSpec(EngineOptions):
    """A Keras Tuner oracle decides every trial; its state lives in the service database."""

    kind: Literal["keras_tuner"]
    algorithm: Literal[KT_ALGORITHMS] = "random"  # type: ignore[valid-type]
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Oracle options: bayesian num_initial_points, alpha, beta; hyperband factor, "
        "hyperband_iterations; any: max_retries_per_trial, max_consecutive_failed_trials.",
    )


class KerasTunerEngine(EnginePlugin):
    kind = "keras_tuner"
    options_model: ClassVar[type[EngineOptions]] = KerasTunerEngineSpec
    # The oracle puts the trial of a lost lease in its own retry queue.
    retries_lost_trials = True
    single_objective = True

    def problems(self, spec: StudySpec) -> list[Problem]:
        problems = super().problems(spec)
        engine = spec.engine
        assert isinstance(engine, KerasTunerEngineSpec)
        if spec.objectives[0].metric == "params":
            problems.append(
                Problem(("objective", "metric"), "keras_tuner needs a training metric", "engine")
            )
        allowed = KT_OPTIONS[engine.algorithm]
        for name, value in engine.options.items():
            where = ("engine", "options", name)
            if name not in allowed:
                problems.append(
                    Problem(
                        where,
                        f"not an option of the '{engine.algorithm}' oracle "
                        f"(allowed: {', '.join(allowed)})",
                        "engine_options",
                    )
                )
                continue
            what, ok = _KT_OPTION_CHECKS[name]
            if not ok(value):
                problems.append(Problem(where, f"must be {what}, got {value!r}", "engine_options"))
        if engine.algorithm == "grid":
            problems.extend(grid_problems(spec, budget_within_grid=False))
        return problems
