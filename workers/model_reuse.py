"""Reuse the previous trial's compiled and traced model when the next trial of the worker has
the same architecture and differs only in values that live outside the traced graph.

Tracing the train and validation steps is most of a short trial's fixed cost (BENCHMARKS.md,
section 7). The learning rate is a variable that the traced step reads; the learning-rate
schedule, early stopping and shuffling are callbacks and ``fit`` arguments; the batch size is
not in the graph either (its batch dimension is ``None``). A trial that changes only these
(:data:`FIT_LEVEL`) can run on the last trial's model: the cache builds the new trial's model
as usual (same seed, so the same initial weights and dropout/augmentation seeds), copies its
state -- weights, batch-norm statistics, random-generator states -- into the traced model,
puts the optimizer's variables back to their values before the first step and sets the new
learning rate. The trial then computes exactly what the fresh model would (a test compares the
histories bit for bit), without tracing anything.

Where the reuse cannot be proven safe it is not done: the architecture, optimizer settings,
steps per execution or precision differ, the model was never prebuilt (its optimizer state did
not exist before the first step), or the last trial failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search_spaces.vocabulary import with_defaults

if TYPE_CHECKING:
    import keras
    import numpy as np

__all__ = ["FIT_LEVEL", "ModelCache", "architecture_key"]

#: Hyperparameters that never reach the traced graph.
FIT_LEVEL = frozenset(
    {"learning_rate", "lr_schedule", "batch_size", "early_stopping_patience", "shuffle",
     "lr_scaling", "lr_reference_batch_size"}  # these two only change the effective LR
)


def architecture_key(params: Mapping[str, Any], **context: Any) -> str:
    """Everything that shapes the traced graph: the parameters but :data:`FIT_LEVEL`, and
    ``context`` (input shape, classes, precision, steps per execution)."""
    graph = {k: v for k, v in with_defaults(params).items() if k not in FIT_LEVEL}
    return json.dumps({"params": graph, **context}, sort_keys=True, default=str)


def _seed_generators(model: keras.Model) -> list[Any]:
    layers = model._flatten_layers()
    return [sg for layer in layers for sg in getattr(layer, "_seed_generators", [])]


class ModelCache:
    """One worker's last model (see the module docstring); ``hits`` counts reuses."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._model: keras.Model | None = None
        self._optimizer_start: list[np.ndarray] | None = None
        self.hits = 0

    def clear(self) -> None:
        self._key = self._model = self._optimizer_start = None

    def take(self, fresh: keras.Model, key: str, learning_rate: float) -> keras.Model:
        """The model to train: the cached one, set to ``fresh``'s state, when ``key`` matches
        and it was prebuilt; else ``fresh`` (remember it with :meth:`keep` once prebuilt)."""
        model = self._model
        if model is None or key != self._key or self._optimizer_start is None:
            self.clear()
            return fresh
        model.set_weights(fresh.get_weights())
        mine, theirs = _seed_generators(model), _seed_generators(fresh)
        if len(mine) != len(theirs):
            self.clear()
            return fresh
        for a, b in zip(mine, theirs, strict=True):
            a.state.assign(b.state.value)
        for var, value in zip(model.optimizer.variables, self._optimizer_start, strict=True):
            var.assign(value)
        model.optimizer.learning_rate = float(learning_rate)
        model.stop_training = False
        self.hits += 1
        return model

    def keep(self, model: keras.Model, key: str) -> None:
        """Remember ``model`` (prebuilt, not trained yet) for the next trial."""
        if model is self._model:
            return
        variables = list(model.optimizer.variables) if model.optimizer is not None else []
        if not variables or not getattr(model.optimizer, "built", False):
            self.clear()
            return
        self._key, self._model = key, model
        self._optimizer_start = [v.numpy().copy() for v in variables]
