"""The ``sklearn_grid`` engine's control-plane half: its options (folds, scorer); every grid point
is queued as a WAITING Optuna trial when the study is created (workers pop them in order with
``study.ask()``, which hands each to exactly one worker), and finished points are assembled into
``GridSearchCV``'s ``cv_results_`` / ``best_params_`` / ``best_score_``.

Candidates are ordered like scikit-learn's ``ParameterGrid`` over the scikeras names (keys
sorted, each key's values in the order of the space), so ``best_index_`` breaks ties the way
``GridSearchCV`` does (the first best candidate)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field

from search_spaces.dimensions import FixedDimension
from search_spaces.scikeras import scikeras_name

from ..errors import Problem
from .base import EngineOptions, EnginePlugin, grid_problems

if TYPE_CHECKING:
    from ..spec import StudySpec


class SklearnGridEngineSpec(EngineOptions):
    """scikeras ``KerasClassifier`` + scikit-learn cross-validation over every grid point, like
    ``GridSearchCV(estimator, param_grid, cv=cv, scoring=scoring)``."""

    kind: Literal["sklearn_grid"]
    cv: int = Field(3, ge=2, le=100, description="Folds (StratifiedKFold for classifiers).")
    scoring: str = Field(
        "accuracy", min_length=1, max_length=100, description="A scikit-learn scorer name."
    )
    refit: bool = Field(
        True,
        description="Like GridSearchCV(refit=True): once the grid is done, the best point is "
        "fitted again on all the data searched (training + validation), scored on the test "
        "split and kept as the study's model.",
    )


ATTR_GRID_INDEX = "grid_index"
ATTR_FOLD_SCORES = "cv_fold_scores"
ATTR_FIT_TIMES = "cv_fit_times"
ATTR_SCORE_TIMES = "cv_score_times"


def grid_names(spec: StudySpec) -> list[str]:
    """The searched (not fixed) dimensions of the grid, in the space's order."""
    return [d.name for d in spec.space().dimensions if not isinstance(d, FixedDimension)]


def enqueue_grid_points(study: optuna.Study, spec: StudySpec) -> int:
    """Queue the first ``n_trials`` points of the grid (in grid order) as WAITING trials."""
    space = spec.space()
    names = grid_names(spec)
    n = 0
    for point in space.grid_points():
        if n >= spec.budget.n_trials:
            break
        params = {k: point[k] for k in names if space[k].is_active(point)}
        study.enqueue_trial(params, user_attrs={ATTR_GRID_INDEX: n})
        n += 1
    return n


def _rank_min(scores: Sequence[float | None]) -> list[int]:
    """scikit-learn's ranks: 1 is best, ties share the smallest rank, missing scores last."""
    vals = [(-math.inf if s is None or math.isnan(s) else s) for s in scores]
    return [1 + sum(1 for w in vals if w > v) for v in vals]


def grid_results(spec: StudySpec, trials: Sequence[FrozenTrial]) -> dict[str, Any]:
    """Finished points in ``GridSearchCV``'s shape."""
    engine = spec.engine
    assert isinstance(engine, SklearnGridEngineSpec)
    space = spec.space()
    names = grid_names(spec)
    values = {n: space[n].grid_values() for n in names}
    order = sorted(names, key=scikeras_name)

    def key(params: dict[str, Any]) -> tuple[int, ...]:
        return tuple(
            values[n].index(params[n]) if params.get(n) in values[n] else -1 for n in order
        )

    # The latest finished run of each point (a re-queued point runs again).
    points: dict[tuple[int, ...], FrozenTrial] = {}
    for t in trials:
        if t.state in (TrialState.COMPLETE, TrialState.FAIL):
            k = key(t.params)
            if k not in points or t.state == TrialState.COMPLETE:
                points[k] = t
    ordered = [points[k] for k in sorted(points)]
    means = [t.value if t.state == TrialState.COMPLETE else None for t in ordered]
    folds = [t.user_attrs.get(ATTR_FOLD_SCORES) or [] for t in ordered]
    cv_results: dict[str, Any] = {
        "params": [{scikeras_name(n): t.params[n] for n in order if n in t.params}
                   for t in ordered],
        "mean_test_score": means,
        "std_test_score": [
            None if m is None or not f else math.sqrt(sum((x - m) ** 2 for x in f) / len(f))
            for m, f in zip(means, folds, strict=True)
        ],
        "rank_test_score": _rank_min(means),
    }
    for i in range(engine.cv):
        cv_results[f"split{i}_test_score"] = [f[i] if len(f) > i else None for f in folds]
    for attr, name in ((ATTR_FIT_TIMES, "mean_fit_time"), (ATTR_SCORE_TIMES, "mean_score_time")):
        times = [t.user_attrs.get(attr) or [] for t in ordered]
        cv_results[name] = [sum(x) / len(x) if x else None for x in times]
    cv_results["trial_number"] = [t.number for t in ordered]
    best = None
    if any(m is not None for m in means):
        best = cv_results["rank_test_score"].index(1)
    return {
        "scoring": engine.scoring,
        "n_splits_": engine.cv,
        "n_candidates": spec.budget.n_trials,
        "n_finished": len(ordered),
        "complete": len(ordered) >= spec.budget.n_trials,
        "cv_results_": cv_results,
        "best_index_": best,
        "best_params_": None if best is None else cv_results["params"][best],
        "best_score_": None if best is None else means[best],
        "best_params": None if best is None else ordered[best].params,
    }


class SklearnGridEngine(EnginePlugin):
    kind = "sklearn_grid"
    options_model: ClassVar[type[EngineOptions]] = SklearnGridEngineSpec
    keeps_model = False  # trials keep scores only; the refit model is the study's
    single_objective = True

    def problems(self, spec: StudySpec) -> list[Problem]:
        problems = super().problems(spec)
        engine = spec.engine
        assert isinstance(engine, SklearnGridEngineSpec)
        if spec.objectives[0].resolved_direction != "maximize":
            problems.append(
                Problem(
                    ("objective", "direction"),
                    "sklearn_grid ranks grid points by the mean cross-validation score "
                    "(greater is better): the direction must be 'maximize'",
                    "engine",
                )
            )
        try:  # scikit-learn is a worker dependency: check the name where it is installed
            from sklearn.metrics import get_scorer_names
        except ImportError:
            pass
        else:
            if engine.scoring not in get_scorer_names():
                problems.append(
                    Problem(
                        ("engine", "scoring"),
                        f"{engine.scoring!r} is not a scikit-learn scorer name",
                        "engine_options",
                    )
                )
        problems.extend(grid_problems(spec, budget_within_grid=True))
        return problems

    def on_create(self, study: optuna.Study, spec: StudySpec) -> None:
        enqueue_grid_points(study, spec)

    def results(self, spec: StudySpec, trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
        return grid_results(spec, trials)
