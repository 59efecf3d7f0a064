"""What an engine's trial may do, and nothing more: train its parameters with the shared loop,
report a value, ask whether it must stop, add attributes to record. Engines get a
:class:`TrialContext`, never the worker; the worker owns the lease and maps the trial's outcome
to the Optuna state and the lease state (:mod:`workers.worker`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner_service.errors import LeaseLostError
from tuner_service.optuna_bridge import (
    ATTR_DATASET_FINGERPRINT,
    ATTR_DEVICE_SECONDS,
    ATTR_EPOCHS,
    ATTR_HISTORY,
    ATTR_PARAM_COUNT,
    ATTR_PARAMS_FULL,
    ATTR_SEED,
    ATTR_VERSIONS,
    ATTR_WALL_TIME,
)
from tuner_service.spec import StudySpec

from .oom import train_with_batch_fallback
from .runtime import seed_everything
from .trial_runner import Decision, Outcome, TrialResult, monitored_metric

if TYPE_CHECKING:
    from .datasets import Dataset
    from .engines.base import TrialHandle
    from .execution import ExecutionOptions
    from .input_pipeline import PipelineCache
    from .model_reuse import ModelCache

log = logging.getLogger(__name__)

#: Trains one trial (:func:`workers.trial_runner.run_trial`, or a cheap stand-in in tests).
TrainFn = Callable[..., TrialResult]


@dataclass(frozen=True)
class Trainer:
    """How this worker trains: the training function and its settings."""

    run_trial_fn: TrainFn
    mixed_precision: bool = False
    versions: Mapping[str, str] | None = None
    execution: ExecutionOptions | None = None  # how fit runs (workers.execution)
    model_cache: ModelCache | None = None  # the last trial's traced model (workers.model_reuse)
    pipelines: PipelineCache | None = None  # the worker's input pipelines (workers.input_pipeline)


class TrialContext:
    def __init__(
        self,
        *,
        study_id: int,
        spec: StudySpec,
        dataset: Dataset,
        handle: TrialHandle,
        trainer: Trainer,
        stop: threading.Event,
        is_cancelled: Callable[[], bool],
    ) -> None:
        self.study_id = study_id
        self.spec = spec
        self.dataset = dataset
        self.handle = handle
        self._trainer = trainer
        self._stop = stop
        self._is_cancelled = is_cancelled
        self._attrs: dict[str, Any] = {}
        self.log_prefix = f"study {study_id} trial {handle.number}"

    @property
    def params(self) -> dict[str, Any]:
        return self.handle.params

    @property
    def stop_requested(self) -> bool:
        """The worker is shutting down: the trial should be handed back."""
        return self._stop.is_set()

    def cancel_requested(self) -> bool:
        """The study was cancelled (one database read)."""
        return self._is_cancelled()

    def interruption(self) -> TrialResult | None:
        """The result of a trial that must end now (handed back, cancelled), else None."""
        if self.stop_requested:
            return _ended(Outcome.HANDED_BACK, "worker shutting down")
        if self.cancel_requested():
            return _ended(Outcome.CANCELLED, "study cancelled")
        return None

    def report(self, step: int, value: float) -> bool:
        """Record one step's objective value; True when the engine stops (prunes) the trial."""
        return self.handle.report(step, value)

    def record_attrs(self, attrs: Mapping[str, Any]) -> None:
        """User attributes written with the outcome (whatever the outcome)."""
        self._attrs.update(attrs)

    @property
    def attrs_to_record(self) -> dict[str, Any]:
        return dict(self._attrs)

    def train(
        self,
        *,
        max_epochs: int | None = None,
        initial_epoch: int = 0,
        initial_weights: str | None = None,
    ) -> TrialResult:
        """Train the trial's parameters with the shared loop (epochs ``initial_epoch`` to
        ``max_epochs``, default the budget's, from ``initial_weights`` when given), reporting
        every epoch; stops early when pruned, cancelled or the worker stops.

        Raises:
            LeaseLostError: the trial was taken back before it started.
        """
        spec, handle = self.spec, self.handle
        max_epochs = max_epochs or spec.budget.max_epochs
        seed_everything(handle.seed)
        try:
            handle.set_attrs(
                {
                    ATTR_SEED: handle.seed,
                    ATTR_DATASET_FINGERPRINT: self.dataset.fingerprint,
                    ATTR_VERSIONS: dict(self._trainer.versions or {}),
                    ATTR_PARAMS_FULL: handle.params,
                }
            )
        except Exception as exc:
            # Taken back already (this worker looked dead for a moment): it is re-queued.
            log.exception("%s: cannot start it", self.log_prefix)
            raise LeaseLostError("trial taken back before it started") from exc
        metric, _mode = monitored_metric(spec.objectives)
        log.info("%s: start %s", self.log_prefix, _short(handle.params, spec.search_space))

        def on_epoch(epoch: int, metrics: Mapping[str, float]) -> Decision:
            log.info(
                "%s epoch %d/%d %s",
                self.log_prefix,
                epoch + 1,
                max_epochs,
                " ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
            )
            if self.stop_requested:
                return Decision.STOP
            if self.cancel_requested():
                return Decision.CANCEL
            if metric in metrics and self.report(epoch, metrics[metric]):
                return Decision.PRUNE
            return Decision.CONTINUE

        result = train_with_batch_fallback(  # out of device memory: half the batch, again
            lambda params: self._trainer.run_trial_fn(
                params,
                self.dataset,
                objectives=spec.objectives,
                max_epochs=max_epochs,
                on_epoch=on_epoch,
                mixed_precision=self._trainer.mixed_precision,
                initial_epoch=initial_epoch,
                initial_weights=initial_weights,
                execution=self._trainer.execution,
                model_cache=self._trainer.model_cache,
                pipelines=self._trainer.pipelines,
            ),
            handle.params,
        )
        self.record_attrs(
            {
                ATTR_HISTORY: result.history,
                ATTR_EPOCHS: result.epochs,
                ATTR_PARAM_COUNT: result.param_count,
                ATTR_WALL_TIME: result.wall_time_s,
                ATTR_DEVICE_SECONDS: result.wall_time_s,
                **result.attrs,
            }
        )
        return result


def _ended(outcome: Outcome, reason: str) -> TrialResult:
    return TrialResult(outcome, None, {}, 0, 0, 0.0, reason=reason)


def failed_result(reason: str) -> TrialResult:
    """A trial that could not run (the engine raised): FAILED with the reason."""
    return _ended(Outcome.FAILED, reason)


def _short(params: Mapping[str, Any], space: Mapping[str, Any]) -> str:
    """The sampled part of the parameters, for log lines."""
    return " ".join(f"{k}={params[k]}" for k in space if k in params)
