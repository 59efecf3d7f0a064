"""workers.training (callbacks, schedules, best weights) and workers.runtime."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tuner_service.spec import DatasetSpec
from workers import runtime
from workers.datasets import load_dataset
from workers.model_builder import build_model
from workers.training import (
    BestWeights,
    EpochSchedule,
    cosine_decay_lr,
    cosine_restarts_lr,
    fit_kwargs,
    plateau_patience,
    restart_period,
    training_callbacks,
)

# --------------------------------------------------------------------------- schedules


def test_cosine_decay_values() -> None:
    assert cosine_decay_lr(0, 0.1, 10) == pytest.approx(0.1)
    assert cosine_decay_lr(5, 0.1, 10) == pytest.approx(0.05)
    assert cosine_decay_lr(10, 0.1, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine_decay_lr(9, 0.1, 10) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.9)))
    values = [cosine_decay_lr(e, 0.1, 10) for e in range(10)]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    assert cosine_decay_lr(0, 0.1, 1) == pytest.approx(0.1)


def test_cosine_restarts_values() -> None:
    assert restart_period(9) == 3 and restart_period(2) == 1 and restart_period(1) == 1
    lr = 0.2
    # periods of 3, 6, 12 epochs: restarts at epochs 0, 3, 9
    for e in (0, 3, 9):
        assert cosine_restarts_lr(e, lr, 9) == pytest.approx(lr)
    assert cosine_restarts_lr(1, lr, 9) == pytest.approx(0.5 * lr * (1 + math.cos(math.pi / 3)))
    assert cosine_restarts_lr(4, lr, 9) == pytest.approx(0.5 * lr * (1 + math.cos(math.pi / 6)))
    assert cosine_restarts_lr(8, lr, 9) == pytest.approx(
        0.5 * lr * (1 + math.cos(math.pi * 5 / 6))
    )
    assert cosine_restarts_lr(2, lr, 9) < cosine_restarts_lr(1, lr, 9)


def test_epoch_schedule_callable() -> None:
    s = EpochSchedule("cosine", 0.1, 10)
    assert s(5) == s(5, 0.123) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        EpochSchedule("constant", 0.1, 10)


def test_plateau_patience_and_callback_config() -> None:
    assert plateau_patience({"early_stopping_patience": 3}) == 1
    assert plateau_patience({"early_stopping_patience": 6}) == 3
    assert plateau_patience({"early_stopping_patience": 0}) == 2
    cbs = training_callbacks(
        {"lr_schedule": "reduce_on_plateau", "learning_rate": 0.01, "early_stopping_patience": 6},
        max_epochs=20,
    )
    (rop,) = [cb for cb in cbs if isinstance(cb, keras.callbacks.ReduceLROnPlateau)]
    assert rop.monitor == "val_loss" and rop.factor == 0.5 and rop.patience == 3
    assert rop.min_lr == pytest.approx(1e-5)


# --------------------------------------------------------------------------- callbacks


def test_callbacks_always_have_terminate_on_nan_and_best_weights_last() -> None:
    for params in ({}, {"early_stopping_patience": 0}, {"lr_schedule": "cosine"}):
        cbs = training_callbacks(params, max_epochs=5, monitor="val_loss", mode="min")
        assert any(isinstance(cb, keras.callbacks.TerminateOnNaN) for cb in cbs)
        assert isinstance(cbs[-1], BestWeights)
        assert cbs[-1].monitor == "val_loss" and cbs[-1].mode == "min"
    es = next(cb for cb in training_callbacks({}, max_epochs=5, monitor="val_loss", mode="min")
              if isinstance(cb, keras.callbacks.EarlyStopping))
    assert es.patience == 3 and es.monitor == "val_loss"
    assert es.restore_best_weights is False  # BestWeights restores


def test_fit_kwargs() -> None:
    assert fit_kwargs({}) == {"batch_size": 32, "shuffle": True}
    assert fit_kwargs({"batch_size": 8, "shuffle": False}) == {"batch_size": 8, "shuffle": False}


class _Holder(keras.Model):
    """A minimal model whose weights we can set by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(2)
        self.dense.build((None, 3))

    def call(self, x):  # pragma: no cover - never called
        return self.dense(x)


def test_best_weights_unit() -> None:
    model = _Holder()
    cb = BestWeights(monitor="val_accuracy", mode="max")
    cb.set_model(model)
    cb.on_train_begin()
    snapshots = []
    for epoch, value in enumerate([0.5, 0.9, float("nan"), 0.7, 0.9]):
        weights = [np.full(w.shape, float(epoch), "float32") for w in model.get_weights()]
        model.set_weights(weights)
        snapshots.append(weights)
        cb.on_epoch_end(epoch, {"val_accuracy": value})
    cb.on_train_end()
    assert cb.best == pytest.approx(0.9) and cb.best_epoch == 1  # ties and NaN do not count
    for got, want in zip(model.get_weights(), snapshots[1], strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        BestWeights(mode="up")


def test_best_weights_min_mode_and_missing_metric() -> None:
    model = _Holder()
    cb = BestWeights(monitor="val_loss", mode="min")
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0})
    cb.on_epoch_end(1, {"val_loss": 2.0})
    cb.on_epoch_end(2, {"val_loss": 1.0})
    cb.on_epoch_end(3, {"val_loss": 1.5})
    assert cb.best == 1.0 and cb.best_epoch == 2


class _Sabotage(keras.callbacks.Callback):
    """Record the weights after each epoch; wreck them before epoch ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.after_epoch: list[list[np.ndarray]] = []

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.at:
            rng = np.random.default_rng(epoch)
            self.model.set_weights(
                [rng.normal(0, 5, w.shape).astype(w.dtype) for w in self.model.get_weights()]
            )

    def on_epoch_end(self, epoch, logs=None):
        self.after_epoch.append([np.array(w) for w in self.model.get_weights()])


@pytest.mark.parametrize("patience", [0, 1])
def test_fit_ends_with_the_best_epochs_weights(patience: int) -> None:
    runtime.seed_everything(1)
    data = load_dataset(DatasetSpec(name="synthetic", shape=(8,), n_samples=300, seed=1))
    params = {"conv_blocks": 0, "dense_layers": 1, "dense_units": 16, "dropout": 0.0,
              "learning_rate": 0.01, "early_stopping_patience": patience, "batch_size": 16}
    model = build_model(params, data.input_shape, data.n_classes)
    sabotage = _Sabotage(at=3)
    cbs = [sabotage, *training_callbacks(params, max_epochs=6)]
    history = model.fit(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
        epochs=6, verbose=0, **fit_kwargs(params), callbacks=cbs,
    )
    val_acc = history.history["val_accuracy"]
    best_epoch = int(np.argmax(val_acc))
    assert best_epoch < 3 and max(val_acc) > max(val_acc[3:]) + 0.1  # an early, clear peak
    if patience:
        assert len(val_acc) < 6  # early stopping stopped it
    for got, want in zip(model.get_weights(), sabotage.after_epoch[best_epoch], strict=True):
        np.testing.assert_array_equal(got, want)
    _, acc = model.evaluate(data.x_val, data.y_val, verbose=0)
    assert acc == pytest.approx(max(val_acc), abs=1e-6)


def test_cosine_schedule_sets_the_optimizer_learning_rate() -> None:
    params = {"conv_blocks": 0, "dense_layers": 0, "dropout": 0.0, "lr_schedule": "cosine",
              "learning_rate": 0.1, "optimizer": "sgd", "early_stopping_patience": 0}
    model = build_model(params, (4,), 3)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0,
              callbacks=training_callbacks(params, max_epochs=4))
    assert float(model.optimizer.learning_rate) == pytest.approx(cosine_decay_lr(2, 0.1, 4))


# --------------------------------------------------------------------------- runtime


def test_runtime_helpers() -> None:
    runtime.seed_everything(123)
    a = np.random.rand(3)
    runtime.seed_everything(123)
    np.testing.assert_array_equal(a, np.random.rand(3))
    import tensorflow as tf

    assert len(runtime.configure_gpu()) == len(tf.config.list_physical_devices("GPU"))
    runtime.configure_threads(None)  # no-op
    runtime.configure_threads(2)  # TF already initialised: logs, never raises
    runtime.configure_threads(2)
    runtime.clear_session()


def test_clear_session_frees_the_trials_graphs() -> None:
    """TensorFlow keeps every traced train step alive through the gradient functions it
    registers for ``tf.custom_gradient`` (never removed): ``clear_session`` drops them, and a
    model whose train step was traced before still trains afterwards."""
    import gc

    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.framework.func_graph import FuncGraph

    def live_graphs() -> int:
        gc.collect()
        return sum(isinstance(o, FuncGraph) for o in gc.get_objects())

    def custom_gradients() -> list[str]:
        return [k for k in tf_ops._gradient_registry._registry
                if str(k).startswith("CustomGradient-")]

    params = {"conv_blocks": 1, "filters": 4, "dense_layers": 1, "dense_units": 8,
              "dropout": 0.0, "learning_rate": 0.01, "early_stopping_patience": 0}
    x = np.random.default_rng(0).normal(size=(32, 8, 8, 1)).astype("float32")
    y = np.arange(32) % 3
    runtime.clear_session()
    old = build_model(params, (8, 8, 1), 3)
    old.fit(x, y, epochs=1, verbose=0)
    assert custom_gradients()  # if TensorFlow stops registering them, this test is moot
    runtime.clear_session()
    assert custom_gradients() == []
    loss = old.fit(x, y, epochs=1, verbose=0).history["loss"][0]  # traced before: still trains
    assert math.isfinite(loss)
    del old
    runtime.clear_session()
    before = live_graphs()
    for _ in range(3):  # trial after trial, the registry and the live graphs do not grow
        m = build_model(params, (8, 8, 1), 3)
        m.fit(x, y, epochs=1, verbose=0)
        del m
        runtime.clear_session()
        assert custom_gradients() == []
    assert live_graphs() <= before
    assert runtime.drop_custom_gradients() == 0
