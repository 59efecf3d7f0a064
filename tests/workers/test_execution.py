"""workers.execution and workers.model_reuse: one trace instead of two with the same results,
steps per execution with the trial's callback semantics intact (NaN, cancel, stop, pruning at
the right epoch), the tf.data input path used on GPUs (run here on the CPU), the
mixed-precision rule, and a reused traced model giving exactly a fresh model's results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import pytest
from support import tiny_images

from tuner_service.spec import ObjectiveSpec
from workers.datasets import Dataset
from workers.execution import (
    AUTO_MIN_TRIAL_BATCHES,
    AUTO_STEPS_PER_EXECUTION,
    ExecutionOptions,
    decide_mixed_precision,
    fit_inputs,
    prebuild,
    steps_per_execution,
)
from workers.model_builder import build_model
from workers.model_reuse import FIT_LEVEL, ModelCache, architecture_key
from workers.runtime import clear_session, seed_everything
from workers.trial_runner import Decision, Outcome, TrialResult, run_trial

PARAMS = {
    "conv_blocks": 1,
    "filters": 4,
    "dense_units": 8,
    "batch_size": 16,
    "dropout": 0.2,
    "batch_norm": True,
    "early_stopping_patience": 0,
}
OBJECTIVES = [ObjectiveSpec(metric="val_accuracy", direction="maximize")]


@pytest.fixture(scope="module")
def data() -> Dataset:
    return tiny_images(240, seed=1)


def _go_on(_epoch: int, _metrics: Mapping[str, float]) -> Decision:
    return Decision.CONTINUE


def _trial(data: Dataset, execution: ExecutionOptions, **kw: Any) -> TrialResult:
    seed_everything(5)
    kw.setdefault("on_epoch", _go_on)
    kw.setdefault("max_epochs", 3)
    return run_trial(PARAMS, data, objectives=OBJECTIVES, execution=execution, **kw)


# --------------------------------------------------------------------------- pure rules


def test_steps_per_execution_rule() -> None:
    # 313 batches x 4 epochs: long enough to repay the multi-step function's first call
    assert steps_per_execution(10_000, 32, None, epochs=4) == AUTO_STEPS_PER_EXECUTION
    assert steps_per_execution(10_000, 32, None, epochs=3) == 1  # 939 batches: too short
    assert AUTO_MIN_TRIAL_BATCHES == 1000
    assert steps_per_execution(100, 32, None, epochs=1000) == 4  # at most one epoch's batches
    assert steps_per_execution(100, 32, 8) == 4
    assert steps_per_execution(100, 32, 1) == 1
    assert steps_per_execution(10_000, 32, 8) == 8
    assert steps_per_execution(0, 32, None) == 1
    with pytest.raises(ValueError, match="steps_per_execution"):
        ExecutionOptions(steps_per_execution=0)


@pytest.mark.parametrize(
    ("mode", "caps", "expected"),
    [
        ("auto", [(8, 0)], True),  # A100: tensor cores
        ("auto", [(9, 0), (7, 0)], True),  # H100 + V100
        ("auto", [(6, 1)], False),  # Pascal: no tensor cores
        ("auto", [(8, 6), (6, 1)], False),  # mixed host: every GPU must have them
        ("auto", [], False),  # the CPU
        ("on", [(6, 1)], True),
        ("on", [], False),  # never on the CPU
        ("off", [(9, 0)], False),
    ],
)
def test_mixed_precision_rule(mode: str, caps: list[tuple[int, int]], expected: bool) -> None:
    assert decide_mixed_precision(mode, caps) is expected


def test_mixed_precision_rule_refuses_unknown_modes() -> None:
    with pytest.raises(ValueError, match="mixed precision"):
        decide_mixed_precision("sometimes", [(8, 0)])


# --------------------------------------------------------------------------- prebuild


def _fit_counting_traces(data: Dataset, pre: bool) -> tuple[int, dict[str, list[float]]]:
    seed_everything(3)
    model = build_model(PARAMS, data.input_shape, data.n_classes)
    traces = 0
    step = model.train_step

    def counted(batch: Any) -> Any:  # runs once per trace, not per batch
        nonlocal traces
        traces += 1
        return step(batch)

    model.train_step = counted
    if pre:
        assert prebuild(model, data.x_train[:1], data.y_train[:1])
    h = model.fit(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=2,
        batch_size=16, verbose=0,
    )
    keras.backend.clear_session()
    return traces, h.history


def test_prebuild_traces_the_train_step_once_with_the_same_results(data: Dataset) -> None:
    plain_traces, plain = _fit_counting_traces(data, pre=False)
    pre_traces, pre = _fit_counting_traces(data, pre=True)
    assert plain_traces == 2  # Keras builds metrics/optimizer inside the first trace
    assert pre_traces == 1
    assert pre == plain  # bit for bit


def test_prebuild_leaves_models_it_cannot_build_alone() -> None:
    class NotKeras:
        pass

    assert prebuild(NotKeras(), np.zeros((1, 2)), np.zeros(1)) is False  # type: ignore[arg-type]


# --------------------------------------------------------------------------- steps per execution


def test_steps_per_execution_gives_the_same_trial(data: Dataset) -> None:
    # both fed NumPy arrays (one batch per call would otherwise use the cached pipelines)
    one = _trial(data, ExecutionOptions(steps_per_execution=1, prebuild=False,
                                        cached_pipeline=False))
    many = _trial(data, ExecutionOptions(steps_per_execution=4))
    assert one.outcome is many.outcome is Outcome.COMPLETE
    assert many.model is not None and many.model.steps_per_execution == 4
    assert one.model is not None and one.model.steps_per_execution == 1
    assert many.history == one.history
    assert many.values == one.values


@pytest.mark.parametrize(
    ("at", "decision", "outcome"),
    [
        (1, Decision.PRUNE, Outcome.PRUNED),
        (0, Decision.CANCEL, Outcome.CANCELLED),
        (1, Decision.STOP, Outcome.HANDED_BACK),
    ],
)
def test_epoch_decisions_land_on_their_epoch_with_steps_per_execution(
    data: Dataset, at: int, decision: Decision, outcome: Outcome
) -> None:
    seen: list[int] = []

    def hook(epoch: int, _metrics: Mapping[str, float]) -> Decision:
        seen.append(epoch)
        return decision if epoch == at else Decision.CONTINUE

    r = _trial(data, ExecutionOptions(steps_per_execution=4), on_epoch=hook, max_epochs=5)
    assert r.outcome is outcome
    assert seen == list(range(at + 1))  # every epoch reported, none after the decision
    assert r.epochs == at + 1


def test_nan_loss_still_fails_the_trial_with_steps_per_execution(data: Dataset) -> None:
    x = np.array(data.x_train, copy=True)
    x[::5] = 1e38  # overflows inside the network: the loss turns NaN in the first epoch
    bad = Dataset(
        name="bad", x_train=x, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val,
        x_test=data.x_test, y_test=data.y_test, input_shape=data.input_shape,
        n_classes=data.n_classes, fingerprint="bad",
    )
    seen: list[int] = []

    def hook(epoch: int, _metrics: Mapping[str, float]) -> Decision:
        seen.append(epoch)
        return Decision.CONTINUE

    r = _trial(bad, ExecutionOptions(steps_per_execution=4), on_epoch=hook, max_epochs=4)
    assert r.outcome is Outcome.FAILED
    assert r.reason == "loss became NaN at epoch 1"
    assert r.epochs == 1 and seen == []  # stopped in the first epoch; no NaN reported


# --------------------------------------------------------------------------- GPU input path


def test_device_pipeline_feeds_tf_data_and_trains(data: Dataset) -> None:
    import tensorflow as tf

    args = fit_inputs(data, batch_size=16, shuffle=True, device_pipeline=True)
    assert isinstance(args["x"], tf.data.Dataset)
    assert isinstance(args["validation_data"], tf.data.Dataset)
    assert "batch_size" not in args and "y" not in args and args["shuffle"] is False
    n = sum(int(y.shape[0]) for _, y in args["x"])
    assert n == len(data.y_train)  # every sample once per epoch, in batches of 16
    r = _trial(data, ExecutionOptions(device_pipeline=True))
    assert r.outcome is Outcome.COMPLETE and r.epochs == 3
    again = _trial(data, ExecutionOptions(device_pipeline=True))
    assert again.history == r.history  # shuffled from the trial's seed: reproducible


def test_array_inputs_are_keras_own(data: Dataset) -> None:
    args = fit_inputs(data, batch_size=16, shuffle=False, device_pipeline=False)
    assert args["x"] is data.x_train and args["y"] is data.y_train
    assert args["batch_size"] == 16 and args["shuffle"] is False


# --------------------------------------------------------------------------- model reuse

REUSE = {**PARAMS, "augment_flip": "horizontal", "augment_rotation": 0.1, "dropout": 0.3}


def _cached_trial(data: Dataset, params: dict[str, Any], cache: ModelCache | None,
                  seed: int, mixed: bool = False) -> TrialResult:
    seed_everything(seed)
    r = run_trial(params, data, objectives=OBJECTIVES, max_epochs=3, on_epoch=_go_on,
                  execution=ExecutionOptions(), model_cache=cache, mixed_precision=mixed)
    clear_session()  # as the worker does between trials
    return r


def test_reused_model_gives_exactly_the_fresh_models_results(data: Dataset) -> None:
    cache = ModelCache()
    first = _cached_trial(data, {**REUSE, "learning_rate": 0.01}, cache, seed=11)
    assert first.outcome is Outcome.COMPLETE and cache.hits == 0
    # the next trial differs only in fit-level values: the traced model is reused
    second_params = {**REUSE, "learning_rate": 0.003, "batch_size": 32, "lr_schedule": "cosine"}
    reused = _cached_trial(data, second_params, cache, seed=12)
    assert cache.hits == 1 and reused.model is first.model
    fresh = _cached_trial(data, second_params, None, seed=12)
    assert fresh.model is not reused.model
    assert reused.history == fresh.history  # bit for bit
    assert reused.values == fresh.values
    # a third trial with another architecture builds (and traces) a new model
    other = _cached_trial(data, {**REUSE, "filters": 8}, cache, seed=13)
    assert cache.hits == 1 and other.model is not first.model


def test_reuse_with_mixed_precision_resets_the_loss_scale_optimizer(data: Dataset) -> None:
    """Mixed precision (used on GPUs) runs on the CPU too, only slowly: the loss-scale
    optimizer's own state is reset with the rest."""
    cache = ModelCache()
    _cached_trial(data, {**PARAMS, "learning_rate": 0.01}, cache, seed=4, mixed=True)
    reused = _cached_trial(data, {**PARAMS, "learning_rate": 0.002}, cache, seed=5, mixed=True)
    assert cache.hits == 1
    fresh = _cached_trial(data, {**PARAMS, "learning_rate": 0.002}, None, seed=5, mixed=True)
    assert reused.history == fresh.history


def test_architecture_key_ignores_only_fit_level_values() -> None:
    base = architecture_key(PARAMS, shape=(8, 8, 1))
    assert base == architecture_key({**PARAMS, "learning_rate": 0.5, "batch_size": 64,
                                     "shuffle": False, "early_stopping_patience": 3,
                                     "lr_schedule": "reduce_on_plateau"}, shape=(8, 8, 1))
    assert {"learning_rate", "lr_schedule", "batch_size", "early_stopping_patience", "shuffle",
            "lr_scaling", "lr_reference_batch_size"} == FIT_LEVEL
    for changed in ({"momentum": 0.5}, {"optimizer": "sgd"}, {"dropout": 0.1},
                    {"filters": 8}, {"beta_1": 0.8}):
        assert architecture_key({**PARAMS, **changed}, shape=(8, 8, 1)) != base
    assert architecture_key(PARAMS, shape=(8, 8, 3)) != base


def test_a_failed_trial_empties_the_cache(data: Dataset) -> None:
    cache = ModelCache()
    _cached_trial(data, PARAMS, cache, seed=1)
    x = np.array(data.x_train, copy=True)
    x[::5] = 1e38
    bad = Dataset(
        name="bad", x_train=x, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val,
        x_test=data.x_test, y_test=data.y_test, input_shape=data.input_shape,
        n_classes=data.n_classes, fingerprint="bad",
    )
    failed = _cached_trial(bad, PARAMS, cache, seed=2)
    assert failed.outcome is Outcome.FAILED and cache.hits == 1
    again = _cached_trial(data, PARAMS, cache, seed=3)
    assert cache.hits == 1 and again.outcome is Outcome.COMPLETE  # built afresh
