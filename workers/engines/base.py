"""The data-plane engine interface: ``start`` a lease's trial (choose its parameters), ``run`` it
through a :class:`~workers.trial_context.TrialContext`; the trial handle records the outcome the
worker decides. Engines never see the worker."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from tuner_service.queue import Claim
    from tuner_service.spec import EnsembleSpec, StudySpec

    from ..datasets import Dataset
    from ..trial_context import TrialContext
    from ..trial_runner import TrialResult


class EngineFatalError(RuntimeError):
    """The study cannot go on (e.g. its sampler needs a package the workers lack): the study
    fails with this reason instead of failing trial after trial."""


class TrialHandle(Protocol):
    number: int
    params: dict[str, Any]
    seed: int

    def report(self, epoch: int, value: float) -> bool:
        """Record one epoch's objective; True when the engine prunes the trial."""
        ...

    def set_attrs(self, attrs: Mapping[str, Any]) -> None: ...

    def complete(self, values: list[float]) -> None: ...

    def prune(self) -> None: ...

    def fail(self, reason: str) -> None: ...

    def hand_back(self, reason: str) -> None:
        """The worker is stopping: the trial is re-queued with the same parameters."""
        ...

    def is_better_than_best(self, values: list[float]) -> bool:
        """Whether these values beat every finished trial of the study (to keep its model)."""
        ...

    def save_model(self, path: str) -> str:
        """Store the model file as the trial's artifact; returns the artifact id."""
        ...

    def keeps_model(self, values: list[float], ensemble: EnsembleSpec) -> bool:
        """Whether this completing trial's model is saved: a new best, or (for the study's
        ensemble) one of the models kept (:mod:`workers.ensemble.keeping`)."""
        ...

    def drop_unkept_models(self, ensemble: EnsembleSpec) -> None:
        """After the trial completed: delete the models that are no longer kept."""
        ...


class WorkerEngine(ABC):
    """One engine kind on a worker (one instance per kind for the worker's life)."""

    @abstractmethod
    def start(
        self, claim: Claim, worker_id: str, stop: threading.Event | None = None
    ) -> TrialHandle | None:
        """Create the trial of a lease, attach it to the lease and choose its parameters.
        None: the engine has nothing to run (the worker drops the unattached lease).
        ``stop`` is set when the worker is shutting down (an engine that waits watches it).

        Raises:
            EngineFatalError: the study cannot run on this engine.
            LeaseLostError: the lease was taken back before the trial was attached.
        """

    def run(self, handle: TrialHandle, ctx: TrialContext) -> TrialResult:
        """Run the trial and say how it ended (default: the shared training loop). The worker
        records the outcome through ``handle``.

        Raises:
            EngineFatalError: the study cannot go on.
            LeaseLostError: the trial was taken back.
        """
        return ctx.train()

    def final_model(
        self, study_name: str, spec: StudySpec, dataset: Dataset, best: FrozenTrial
    ) -> dict[str, Any] | None:
        """For an engine whose trials keep no model: build the study's final model at the
        final evaluation (e.g. a grid's refit) and return the evaluation record
        (``trial_number``, ``test_metrics``, ``model_artifact_id``, ...); None: no model."""
        return None
