"""Train one trial: build the CNN from its parameters, fit it epoch by epoch, and say how it
ended. Engine-agnostic: the caller decides, after each epoch, whether to go on."""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras

from search_spaces.vocabulary import effective_learning_rate
from tuner_service.spec import ObjectiveSpec

from .datasets import Dataset
from .execution import ExecutionOptions, fit_inputs, prebuild, steps_per_execution
from .faults import fault_callbacks
from .input_pipeline import PipelineCache, seed_for_trial
from .model_builder import build_model
from .model_reuse import ModelCache, architecture_key
from .training import fit_kwargs, training_callbacks


class Decision(str, enum.Enum):
    """What the caller wants after an epoch."""

    CONTINUE = "continue"
    PRUNE = "prune"  # the engine's pruner stopped the trial
    CANCEL = "cancel"  # the study was cancelled
    STOP = "stop"  # the worker is shutting down: hand the trial back


class Outcome(str, enum.Enum):
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"


@dataclass
class TrialResult:
    outcome: Outcome
    values: list[float] | None
    history: dict[str, list[float]]
    epochs: int
    param_count: int
    wall_time_s: float
    reason: str | None = None
    model: keras.Model | None = field(default=None, repr=False)
    error: BaseException | None = field(default=None, repr=False)  # why training failed
    attrs: dict[str, Any] = field(default_factory=dict)  # more user attributes to record


EpochHook = Callable[[int, Mapping[str, float]], Decision]


class _EpochHookCallback(keras.callbacks.Callback):
    def __init__(self, hook: EpochHook) -> None:
        super().__init__()
        self.hook = hook
        self.decision = Decision.CONTINUE

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        if any(math.isnan(v) for v in metrics.values()):
            return  # TerminateOnNaN stops the run; the trial fails with the reason
        decision = self.hook(epoch, metrics)
        if decision is not Decision.CONTINUE:
            self.decision = decision
            self.model.stop_training = True


def monitored_metric(objectives: Sequence[ObjectiveSpec]) -> tuple[str, str]:
    """The per-epoch metric that picks the best epoch: the first objective measured by
    training (``params`` is not), else the validation loss."""
    for o in objectives:
        if o.metric != "params":
            return o.metric, "max" if o.resolved_direction == "maximize" else "min"
    return "val_loss", "min"


def objective_values(
    objectives: Sequence[ObjectiveSpec],
    history: Mapping[str, Sequence[float]],
    param_count: int,
) -> list[float]:
    """Each objective at the best epoch (the weights the model keeps), ``params`` as counted."""
    metric, mode = monitored_metric(objectives)
    series = list(history[metric])
    pick = max if mode == "max" else min
    best_epoch = series.index(pick(series))
    return [
        float(param_count) if o.metric == "params" else float(history[o.metric][best_epoch])
        for o in objectives
    ]


def _model_for(
    params: Mapping[str, Any],
    dataset: Dataset,
    mixed_precision: bool,
    spe: int,
    execution: ExecutionOptions,
    initial_weights: str | None,
    cache: ModelCache | None,
) -> keras.Model:
    """The trial's compiled model: built fresh, or the cache's traced one set to the fresh
    one's state (only without ``initial_weights``, and only once prebuilt)."""
    fresh = build_model(
        params, dataset.input_shape, dataset.n_classes, mixed_precision=mixed_precision
    )
    if cache is not None and initial_weights is None and execution.prebuild:
        key = architecture_key(
            params, shape=dataset.input_shape, classes=dataset.n_classes,
            mixed=mixed_precision, spe=spe, pipeline=execution.device_pipeline,
        )
        model = cache.take(fresh, key, effective_learning_rate(params))
        if model is not fresh:
            return model
    else:
        key = None
    if initial_weights is not None:
        fresh.load_weights(initial_weights)
    fresh.steps_per_execution = spe
    if execution.prebuild:
        built = prebuild(fresh, dataset.x_train[:1], dataset.y_train[:1])
        if built and cache is not None and key is not None:
            cache.keep(fresh, key)
    return fresh


def run_trial(
    params: Mapping[str, Any],
    dataset: Dataset,
    *,
    objectives: Sequence[ObjectiveSpec],
    max_epochs: int,
    on_epoch: EpochHook,
    mixed_precision: bool = False,
    verbose: int = 0,
    initial_epoch: int = 0,
    initial_weights: str | None = None,
    execution: ExecutionOptions | None = None,
    model_cache: ModelCache | None = None,
    pipelines: PipelineCache | None = None,
) -> TrialResult:
    """Train ``params`` on ``dataset`` for up to ``max_epochs``; ``on_epoch`` is called after
    each epoch with its metrics and decides whether training goes on.

    ``initial_epoch`` and ``initial_weights`` continue an earlier training (Keras Tuner's
    Hyperband: epochs ``initial_epoch`` to ``max_epochs`` from the saved weights).
    ``execution`` says how ``fit`` runs (:mod:`workers.execution`; default: the worker's
    choices -- prebuilt state, several steps per execution, NumPy inputs). With
    ``model_cache`` the last trial's traced model is reused when only fit-level values
    differ (:mod:`workers.model_reuse`); a failed trial empties the cache. ``pipelines``:
    the worker's input pipelines (:mod:`workers.input_pipeline`; without, the trial builds
    its own, with the same results).

    Errors inside training (a model that does not fit in memory, bad shapes) become a FAILED
    result with the reason; the caller's process keeps serving.
    """
    started = time.perf_counter()
    execution = execution or ExecutionOptions()
    history: dict[str, list[float]] = {}
    model: keras.Model | None = None
    param_count = 0
    fit_args = fit_kwargs(params)
    try:
        spe = steps_per_execution(
            len(dataset.y_train),
            fit_args["batch_size"],
            execution.steps_per_execution,
            epochs=max_epochs - initial_epoch,
        )
        cached = execution.cached_pipeline and not execution.device_pipeline and spe == 1
        if cached:
            if pipelines is None:
                pipelines = PipelineCache(max_datasets=1)
            data_args = pipelines.fit_inputs(
                dataset, seed=seed_for_trial(), initial_epoch=initial_epoch, **fit_args
            )
        else:
            data_args = fit_inputs(
                dataset, device_pipeline=execution.device_pipeline, **fit_args
            )
        model = _model_for(
            params, dataset, mixed_precision, spe, execution, initial_weights, model_cache
        )
        param_count = int(model.count_params())
        metric, mode = monitored_metric(objectives)
        hook = _EpochHookCallback(on_epoch)
        callbacks = [
            *training_callbacks(params, max_epochs=max_epochs, monitor=metric, mode=mode),
            *fault_callbacks(params),
            hook,
        ]
        fit = model.fit(
            **data_args,
            epochs=max_epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
        history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    except Exception as exc:
        if model_cache is not None:
            model_cache.clear()
        return TrialResult(
            Outcome.FAILED,
            None,
            history,
            len(history.get("loss", [])),
            param_count,
            time.perf_counter() - started,
            reason=f"{type(exc).__name__}: {exc}",
            error=exc,
        )
    wall = time.perf_counter() - started
    epochs = len(history.get("loss", []))
    nan_epoch = next(
        (i for i, v in enumerate(history.get("loss", [])) if not math.isfinite(v)), None
    )
    if nan_epoch is not None:
        if model_cache is not None:
            model_cache.clear()
        return TrialResult(
            Outcome.FAILED,
            None,
            history,
            epochs,
            param_count,
            wall,
            reason=f"loss became NaN at epoch {nan_epoch + 1}",
        )
    if hook.decision is Decision.STOP:
        return TrialResult(
            Outcome.HANDED_BACK,
            None,
            history,
            epochs,
            param_count,
            wall,
            reason="worker shutting down",
        )
    if hook.decision is Decision.CANCEL:
        return TrialResult(
            Outcome.CANCELLED, None, history, epochs, param_count, wall, reason="study cancelled"
        )
    if hook.decision is Decision.PRUNE:
        return TrialResult(
            Outcome.PRUNED,
            None,
            history,
            epochs,
            param_count,
            wall,
            reason=f"pruned after epoch {epochs}",
            model=model,
        )
    values = objective_values(objectives, history, param_count)
    return TrialResult(Outcome.COMPLETE, values, history, epochs, param_count, wall, model=model)
