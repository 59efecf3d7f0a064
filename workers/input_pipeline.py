"""Input pipelines built once per worker and fed to every trial's ``fit``.

Given NumPy arrays, Keras builds a new ``tf.data`` pipeline on every ``fit`` (and traces its
dataset functions again), then a new iterator at every epoch; on the digits set that was about
a tenth of the first epoch and 40 % of a steady one (BENCHMARKS.md, section 7). A
:class:`PipelineCache` builds, per dataset and batch size, one training and one validation
pipeline and hands the same ones to each trial:

- training: the epoch's order is ``stateless_shuffle(range(n), seed=(trial seed, epoch))``
  (or ``range(n)`` without shuffling), cut into batches of ``batch_size`` (the last one
  partial), the batches gathered from the arrays; epochs follow each other in one stream that
  ``fit`` reads with ``steps_per_epoch`` = the batches of one epoch, so one iterator lasts the
  whole trial. The trial seed and the first epoch are variables that the pipeline reads when
  it computes an epoch's order, set before ``fit`` starts: so the order is a function of the
  trial's seed and the epoch alone -- the same whether the pipeline is new or has served other
  trials (a test compares histories bit for bit), and reproducible;
- validation: the arrays in order, in batches of ``batch_size`` (what Keras does with arrays,
  so the validation metrics of given weights are the same).

The training order differs from Keras' own shuffling of NumPy inputs, so a trial trained this
way does not repeat the numbers of a trial trained before this existed (same seed, other
order), only its own. It feeds ``fit`` when one call runs one batch (``steps_per_execution``
1: every trial of less than :data:`workers.execution.AUTO_MIN_TRIAL_BATCHES` batches):
several batches per call would read across the end of an epoch in the stream.

Arrays are held as TensorFlow tensors (one copy of each dataset's training and validation
arrays, for the datasets the cache holds: at most ``max_datasets``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorflow as tf

    from .datasets import Dataset

__all__ = ["PipelineCache", "seed_for_trial"]

_SEED_RANGE = 2**31 - 1


def seed_for_trial() -> int:
    """The trial's shuffling seed, drawn from NumPy's global generator (seeded with the
    trial's seed by :func:`workers.runtime.seed_everything`)."""
    import numpy as np

    return int(np.random.randint(0, _SEED_RANGE))


@dataclass
class _Tensors:
    arrays: tuple[Any, Any, Any, Any]  # the dataset's arrays, compared by identity
    x: tf.Tensor
    y: tf.Tensor
    x_val: tf.Tensor
    y_val: tf.Tensor


@dataclass
class _Pipelines:
    train: tf.data.Dataset
    val: tf.data.Dataset
    seed: tf.Variable
    first_epoch: tf.Variable
    steps: int


class PipelineCache:
    """One worker's input pipelines (module docstring); ``hits`` counts reuses."""

    def __init__(self, max_datasets: int = 2) -> None:
        self.max_datasets = max(1, int(max_datasets))
        self._tensors: OrderedDict[int, _Tensors] = OrderedDict()
        self._pipelines: dict[tuple[int, int, bool], _Pipelines] = {}
        self.hits = 0

    def __len__(self) -> int:
        """How many pipelines (per dataset, batch size, shuffling) the cache holds."""
        return len(self._pipelines)

    def fit_inputs(
        self, dataset: Dataset, *, batch_size: int, shuffle: bool, seed: int,
        initial_epoch: int = 0,
    ) -> dict[str, Any]:
        """The data keyword arguments of ``model.fit`` for one trial: the training stream set
        to ``seed`` and ``initial_epoch``, the validation pipeline, ``steps_per_epoch``."""
        tensors = self._tensors_of(dataset)
        key = (id(tensors), int(batch_size), bool(shuffle))
        pipes = self._pipelines.get(key)
        if pipes is None:
            pipes = self._pipelines[key] = _build(tensors, int(batch_size), bool(shuffle))
        else:
            self.hits += 1
        pipes.seed.assign(int(seed) % _SEED_RANGE)
        pipes.first_epoch.assign(int(initial_epoch))
        return {
            "x": pipes.train,
            "validation_data": pipes.val,
            "steps_per_epoch": pipes.steps,
            "shuffle": False,  # the pipeline shuffles; Keras ignores (and warns about) its own
        }

    def _tensors_of(self, dataset: Dataset) -> _Tensors:
        import tensorflow as tf

        arrays = (dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val)
        for k, held in self._tensors.items():
            if all(a is b for a, b in zip(held.arrays, arrays, strict=True)):
                self._tensors.move_to_end(k)
                return held
        while len(self._tensors) >= self.max_datasets:
            _, old = self._tensors.popitem(last=False)
            self._pipelines = {k: p for k, p in self._pipelines.items() if k[0] != id(old)}
        held = _Tensors(arrays, *(tf.convert_to_tensor(a) for a in arrays))
        self._tensors[id(held)] = held
        return held


def _build(t: _Tensors, batch_size: int, shuffle: bool) -> _Pipelines:
    import tensorflow as tf

    n = int(t.y.shape[0])
    seed = tf.Variable(0, dtype=tf.int64, trainable=False)
    first_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def epoch_batches(k: tf.Tensor) -> tf.data.Dataset:
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            pair = tf.stack([seed.read_value(), first_epoch.read_value() + k])
            order = tf.random.experimental.stateless_shuffle(order, seed=pair)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    def gather(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.gather(t.x, i), tf.gather(t.y, i)

    train = (
        tf.data.Dataset.counter()
        .flat_map(epoch_batches)
        .map(gather)
        .prefetch(2)
    )
    val = tf.data.Dataset.from_tensor_slices((t.x_val, t.y_val)).batch(batch_size).prefetch(2)
    return _Pipelines(train, val, seed, first_epoch, max(1, math.ceil(n / batch_size)))
