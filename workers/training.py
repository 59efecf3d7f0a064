"""Training setup of one trial: Keras callbacks and ``fit`` keyword arguments from the vocabulary.

Best weights: the service records the best epoch's validation metric, so the model left in
memory when ``fit`` returns must hold that epoch's weights (the saved model then reproduces the
recorded metric). :class:`BestWeights` keeps a copy of the weights whenever the monitored value
improves and puts the best ones back in ``on_train_end`` -- whether training stopped early, ran
all its epochs, or was ended by ``TerminateOnNaN``. It is always in the list, so
``EarlyStopping`` only decides *when* to stop (``restore_best_weights=False``: Keras 3.15's
EarlyStopping would also restore at the end, but only when it is present -- not with
``early_stopping_patience=0`` -- and keeping one copy of the weights instead of two saves memory).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from search_spaces.vocabulary import effective_learning_rate, with_defaults

__all__ = [
    "BestWeights",
    "EpochSchedule",
    "cosine_decay_lr",
    "cosine_restarts_lr",
    "fit_kwargs",
    "plateau_patience",
    "restart_period",
    "training_callbacks",
]

log = logging.getLogger(__name__)

#: ReduceLROnPlateau never goes below ``initial learning rate * MIN_LR_FRACTION``.
MIN_LR_FRACTION = 1e-3
PLATEAU_FACTOR = 0.5


# --------------------------------------------------------------------------- schedules


def cosine_decay_lr(epoch: int, initial_lr: float, max_epochs: int) -> float:
    """Cosine decay from ``initial_lr`` at epoch 0 towards 0 at epoch ``max_epochs``."""
    total = max(1, int(max_epochs))
    progress = min(max(int(epoch), 0), total) / total
    return float(0.5 * initial_lr * (1.0 + math.cos(math.pi * progress)))


def restart_period(max_epochs: int) -> int:
    """Length of the first cosine-restarts period: a third of the trial, at least 1 epoch."""
    return max(1, int(max_epochs) // 3)


def cosine_restarts_lr(epoch: int, initial_lr: float, max_epochs: int) -> float:
    """Cosine decay with warm restarts (SGDR): the first period lasts
    :func:`restart_period` epochs, each next one twice as long; every period restarts at
    ``initial_lr``."""
    period = restart_period(max_epochs)
    e = max(int(epoch), 0)
    while e >= period:
        e -= period
        period *= 2
    return float(0.5 * initial_lr * (1.0 + math.cos(math.pi * e / period)))


class EpochSchedule:
    """Picklable ``epoch -> lr`` callable for ``keras.callbacks.LearningRateScheduler``."""

    def __init__(self, kind: str, initial_lr: float, max_epochs: int) -> None:
        if kind not in ("cosine", "cosine_restarts"):
            raise ValueError(f"no per-epoch schedule for lr_schedule={kind!r}")
        self.kind = kind
        self.initial_lr = float(initial_lr)
        self.max_epochs = int(max_epochs)

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        if self.kind == "cosine":
            return cosine_decay_lr(epoch, self.initial_lr, self.max_epochs)
        return cosine_restarts_lr(epoch, self.initial_lr, self.max_epochs)

    def __repr__(self) -> str:
        return f"EpochSchedule({self.kind!r}, {self.initial_lr!r}, {self.max_epochs!r})"


def plateau_patience(params: Mapping[str, Any]) -> int:
    """ReduceLROnPlateau patience: half the early-stopping patience (at least 1), or 2 epochs
    when early stopping is off -- so the learning rate drops before training stops."""
    patience = int(with_defaults(params)["early_stopping_patience"])
    return max(1, patience // 2) if patience > 0 else 2


# --------------------------------------------------------------------------- callbacks


class BestWeights(keras.callbacks.Callback):
    """Keep the weights of the best epoch by ``monitor`` and restore them when training ends.

    Non-finite or missing monitor values never count as an improvement. ``best`` and
    ``best_epoch`` (0-based) tell what was restored (``None`` if nothing was ever recorded).
    """

    def __init__(self, monitor: str = "val_accuracy", mode: str = "max") -> None:
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self._warned = False

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.best = None
        self.best_epoch = None
        self.best_weights = None

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        raw = (logs or {}).get(self.monitor)
        if raw is None:
            if not self._warned:
                log.warning("BestWeights: metric %r is not in the epoch logs", self.monitor)
                self._warned = True
            return
        value = float(raw)
        if not math.isfinite(value) or not self._improves(value):
            return
        self.best = value
        self.best_epoch = int(epoch)
        self.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def training_callbacks(
    params: Mapping[str, Any],
    *,
    max_epochs: int,
    monitor: str = "val_accuracy",
    mode: str = "max",
) -> list[keras.callbacks.Callback]:
    """The callbacks of one trial.

    * ``EarlyStopping(monitor, mode, patience)`` when ``early_stopping_patience`` > 0;
    * the ``lr_schedule``: nothing (constant), ``ReduceLROnPlateau`` on ``val_loss``
      (factor 0.5, patience :func:`plateau_patience`), or a per-epoch
      ``LearningRateScheduler`` (cosine / cosine with warm restarts over ``max_epochs``);
    * always ``TerminateOnNaN`` and, last, :class:`BestWeights` (restores the best epoch).
    """
    p = with_defaults(params)
    callbacks: list[keras.callbacks.Callback] = []
    patience = int(p["early_stopping_patience"])
    if patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=patience, restore_best_weights=False
            )
        )
    schedule = p["lr_schedule"]
    initial_lr = effective_learning_rate(p)
    if schedule == "reduce_on_plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", mode="min", factor=PLATEAU_FACTOR,
                patience=plateau_patience(p), min_lr=initial_lr * MIN_LR_FRACTION,
            )
        )
    elif schedule in ("cosine", "cosine_restarts"):
        callbacks.append(
            keras.callbacks.LearningRateScheduler(EpochSchedule(schedule, initial_lr, max_epochs))
        )
    elif schedule != "constant":
        raise ValueError(f"unknown lr_schedule {schedule!r}")
    callbacks.append(keras.callbacks.TerminateOnNaN())
    callbacks.append(BestWeights(monitor=monitor, mode=mode))
    return callbacks


def fit_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """``model.fit`` keyword arguments from the vocabulary: ``batch_size`` and ``shuffle``."""
    p = with_defaults(params)
    return {"batch_size": int(p["batch_size"]), "shuffle": bool(p["shuffle"])}
