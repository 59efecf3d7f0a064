"""The ``optuna`` engine's control-plane half: its options (sampler, pruner), the sampler and
pruner built from them (pure Optuna, no TensorFlow), and the problems only Optuna can see."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import optuna
from pydantic import Field

from search_spaces import SearchSpace

from ..errors import Problem
from .base import EngineOptions, EnginePlugin

if TYPE_CHECKING:
    from ..spec import StudySpec

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid", "nsga2")
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband", "wilcoxon", "patient")


class OptunaEngineSpec(EngineOptions):
    kind: Literal["optuna"] = "optuna"
    sampler: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    pruner: Literal[PRUNERS] = "median"  # type: ignore[valid-type]
    pruner_options: dict[str, Any] = Field(default_factory=dict)


def build_sampler(
    engine: OptunaEngineSpec, space: SearchSpace, *, seed: int | None
) -> optuna.samplers.BaseSampler:
    """Raises:
    ValueError, TypeError: bad options; ImportError: the sampler needs a missing package.
    """
    opts = dict(engine.sampler_options)
    kind = engine.sampler
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **opts)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed, **opts)
    if kind == "gp":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "the 'gp' sampler needs PyTorch on the workers: pip install torch"
            ) from exc
        return optuna.samplers.GPSampler(seed=seed, **opts)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, **opts)
    if kind == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, **opts)
    if kind == "grid":
        return optuna.samplers.GridSampler(space.to_param_grid(), seed=seed, **opts)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, **opts)
    raise ValueError(f"unknown sampler {kind!r}")


def build_pruner(engine: OptunaEngineSpec, *, max_epochs: int) -> optuna.pruners.BasePruner:
    """Raises:
    ValueError, TypeError: bad options.
    """
    opts = dict(engine.pruner_options)
    kind = engine.pruner
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(**opts)
    if kind == "percentile":
        opts.setdefault("percentile", 25.0)
        return optuna.pruners.PercentilePruner(**opts)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**opts)
    if kind == "hyperband":
        opts.setdefault("min_resource", 1)
        opts.setdefault("max_resource", max_epochs)
        return optuna.pruners.HyperbandPruner(**opts)
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(**opts)
    if kind == "patient":
        opts.setdefault("patience", 2)
        return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), **opts)
    raise ValueError(f"unknown pruner {kind!r}")


class OptunaEngine(EnginePlugin):
    kind = "optuna"
    options_model: ClassVar[type[EngineOptions]] = OptunaEngineSpec

    def problems(self, spec: StudySpec) -> list[Problem]:
        """Options Optuna's constructors refuse; a grid smaller than the budget."""
        problems = super().problems(spec)
        engine = spec.engine
        assert isinstance(engine, OptunaEngineSpec)
        space = spec.space()
        try:
            if engine.sampler != "gp":  # gp is checked on the workers (needs PyTorch there)
                build_sampler(engine, space, seed=spec.seed)
        except (TypeError, ValueError) as exc:
            where = ("engine", "sampler_options") if engine.sampler != "grid" else ("search_space",)
            problems.append(Problem(where, f"sampler '{engine.sampler}': {exc}", "engine_options"))
        try:
            build_pruner(engine, max_epochs=spec.budget.max_epochs)
        except (TypeError, ValueError) as exc:
            problems.append(
                Problem(
                    ("engine", "pruner_options"),
                    f"pruner '{engine.pruner}': {exc}",
                    "engine_options",
                )
            )
        if engine.sampler == "grid" and not problems:
            size = space.grid_size()
            if spec.budget.n_trials > size:
                problems.append(
                    Problem(
                        ("budget", "n_trials"),
                        f"the grid has {size} points; "
                        f"n_trials ({spec.budget.n_trials}) cannot exceed it",
                        "grid_too_small",
                    )
                )
        return problems
