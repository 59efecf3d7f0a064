"""The control-plane half of an engine: everything the service must know about an engine kind,
without TensorFlow. One subclass per kind, registered once (:mod:`.registry`); core code asks
the registered object instead of comparing kind strings.

The data-plane half (which parameters each trial gets, how it trains) lives in
``workers/engines`` and is registered there under the same kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..errors import Problem

if TYPE_CHECKING:  # the spec holds the engine options: no import at run time (no circle)
    import optuna
    from optuna.trial import FrozenTrial

    from ..spec import StudySpec


class EngineOptions(BaseModel):
    """Base of every engine's options model (the spec's ``engine`` object). A subclass sets
    ``kind: Literal["<kind>"]`` and its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str


class EnginePlugin:
    """One engine kind as the control plane sees it. Override what differs from the defaults."""

    #: The spec's ``engine.kind``.
    kind: ClassVar[str]
    #: The pydantic model of the spec's ``engine`` object for this kind.
    options_model: ClassVar[type[EngineOptions]]
    #: The engine sends a lost trial back itself (e.g. a Keras Tuner oracle's retry queue);
    #: otherwise the reaper re-queues a WAITING Optuna copy of it.
    retries_lost_trials: ClassVar[bool] = False
    #: Trials keep a trained model (the final evaluation loads the best one).
    keeps_model: ClassVar[bool] = True
    #: The engine optimises exactly one objective.
    single_objective: ClassVar[bool] = False

    def problems(self, spec: StudySpec) -> list[Problem]:
        """Problems of the spec that the options model's types cannot see."""
        if self.single_objective and len(spec.objectives) > 1:
            return [Problem(("objective",), f"engine '{self.kind}' optimises one objective",
                            "engine")]
        return []

    def on_create(self, study: optuna.Study, spec: StudySpec) -> None:
        """Called once when the study is created (after its Optuna study exists)."""

    def results(self, spec: StudySpec, trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
        """The engine's own view of a study's results (``GET /studies/{id}/grid``), or None
        when the engine has none."""
        return None


def grid_problems(spec: StudySpec, *, budget_within_grid: bool) -> list[Problem]:
    """Problems of an engine that walks the space's grid: a dimension without grid values; with
    ``budget_within_grid``, a budget larger than the grid."""
    from search_spaces import SearchSpaceError

    try:
        size = spec.space().grid_size()
    except SearchSpaceError as exc:
        return [Problem(("search_space", *p.path), p.message, p.code) for p in exc.problems]
    if budget_within_grid and spec.budget.n_trials > size:
        return [
            Problem(
                ("budget", "n_trials"),
                f"the grid has {size} points; n_trials ({spec.budget.n_trials}) "
                "cannot exceed it (set it to the grid size to run every point)",
                "grid_too_small",
            )
        ]
    return []
