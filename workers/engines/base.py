"""The engine interface: start a trial (get its parameters), report epochs, end it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tuner_service.queue import Claim
from tuner_service.spec import StudySpec

if TYPE_CHECKING:
    from workers.datasets import Dataset
    from workers.worker import Worker


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


class Engine(Protocol):
    def start(self, claim: Claim, worker_id: str) -> TrialHandle:
        """Create the trial for a lease and choose its parameters.

        Raises:
            EngineFatalError: the study cannot run on this engine.
        """
        ...


@runtime_checkable
class ClaimRunner(Protocol):
    """An engine that runs a whole lease itself (its trials do not fit ``start`` + the shared
    training loop: a Keras Tuner oracle's continued trials, cross-validated grid points). It
    may use ``worker.train`` for the shared loop and must end the lease."""

    def run_claim(self, claim: Claim, spec: StudySpec, dataset: Dataset, worker: Worker) -> None:
        """Raises:
        EngineFatalError: the study cannot run on this engine.
        """
        ...
