"""How a trial's model runs on its device: fewer traces, more steps per call, fed well.

Measured (``bench/trial_fixed_cost.py``, BENCHMARKS.md section 7) before anything here was
added: most of a short trial's fixed cost is TensorFlow tracing the train step, and Keras
traced it *twice* -- without a distribution strategy Keras 3 builds the compiled metrics and
the optimizer's slots inside the first trace, and a ``tf.function`` that creates variables on
its first call is traced again. :func:`prebuild` creates that state before ``fit``, so the
train step is traced once; the results are bit-for-bit those of a plain ``fit`` (a test
compares).

:func:`steps_per_execution` runs several batches per call into TensorFlow (Keras'
``steps_per_execution``): less Python per batch, for trials long enough to repay its costlier
first call. Batch callbacks then see every N-th batch;
epoch callbacks (the worker's hook: cancel, stop, pruning) are unchanged, ``TerminateOnNaN``
still stops the epoch (the running loss it reads stays NaN once a batch was NaN), and the
trial's metrics are the same.

:func:`fit_inputs` feeds ``fit``: NumPy arrays (Keras' own pipeline), or on a GPU a
``tf.data`` pipeline that shuffles and batches in TensorFlow and prefetches the next batches
while the device computes (``AUTOTUNE``). On the CPU, trials of one batch per call are fed
from input pipelines built once per worker instead (:mod:`workers.input_pipeline`).

:func:`decide_mixed_precision` is the ``--mixed-precision auto|on|off`` rule.

Nothing here imports TensorFlow at module level.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from .datasets import Dataset

__all__ = [
    "AUTO_MIN_TRIAL_BATCHES",
    "AUTO_STEPS_PER_EXECUTION",
    "MIXED_PRECISION_MODES",
    "ExecutionOptions",
    "decide_mixed_precision",
    "fit_inputs",
    "prebuild",
    "steps_per_execution",
]

log = logging.getLogger(__name__)

#: Batches per call into TensorFlow when the worker chooses (Keras' own suggestion for small
#: models; ~15 % off a steady epoch on the CPU, see the issue and BENCHMARKS.md).
AUTO_STEPS_PER_EXECUTION = 32
#: ... but only for trials of at least this many batches (epochs x batches per epoch): the
#: multi-step function costs about 1.5 s more to trace and optimise on first use (measured,
#: BENCHMARKS.md section 7) and saves 1-3 ms per batch, so short trials are faster without it.
AUTO_MIN_TRIAL_BATCHES = 1000

MIXED_PRECISION_MODES = ("auto", "on", "off")

#: Tensor cores arrived with compute capability 7.0 (Volta).
TENSOR_CORE_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class ExecutionOptions:
    """How the worker runs ``fit`` (the same for every trial of a worker).

    ``steps_per_execution``: batches per call into TensorFlow; ``None`` lets the worker
    choose (:func:`steps_per_execution`). ``prebuild``: build the metrics and optimizer state
    before ``fit`` (one trace of the train step instead of two). ``device_pipeline``: feed
    ``fit`` from a prefetching ``tf.data`` pipeline instead of NumPy arrays (the daemon turns
    it on when a GPU is visible). ``reuse_models``: reuse the last trial's traced model when
    only fit-level values differ (:mod:`workers.model_reuse`; needs ``prebuild``).
    ``cached_pipeline``: feed trials of one batch per call from the worker's input pipelines
    (:mod:`workers.input_pipeline`) instead of NumPy arrays.
    """

    steps_per_execution: int | None = None
    prebuild: bool = True
    device_pipeline: bool = False
    reuse_models: bool = True
    cached_pipeline: bool = True

    def __post_init__(self) -> None:
        if self.steps_per_execution is not None and self.steps_per_execution < 1:
            raise ValueError(
                f"steps_per_execution must be at least 1, got {self.steps_per_execution}"
            )


def steps_per_execution(
    n_train: int, batch_size: int, requested: int | None, epochs: int = 1
) -> int:
    """Batches per call: ``requested`` when given; else :data:`AUTO_STEPS_PER_EXECUTION` for
    a trial of at least :data:`AUTO_MIN_TRIAL_BATCHES` batches (``epochs`` x batches per epoch)
    and 1 for a shorter one. Never more than one epoch's batches, at least 1."""
    batches = max(1, math.ceil(max(0, int(n_train)) / max(1, int(batch_size))))
    if requested is not None:
        wanted = int(requested)
    elif batches * max(1, int(epochs)) >= AUTO_MIN_TRIAL_BATCHES:
        wanted = AUTO_STEPS_PER_EXECUTION
    else:
        wanted = 1
    return max(1, min(wanted, batches))


def prebuild(model: keras.Model, x_sample: Any, y_sample: Any) -> bool:
    """Create the compiled metrics', loss trackers' and optimizer's variables now, from
    symbolic shapes (nothing is computed, no state changes), so that ``fit`` traces its
    train step once instead of twice. Returns whether it did; with a Keras whose internals
    differ it does nothing (``fit`` then builds them itself, as before)."""
    build = getattr(model, "_symbolic_build", None)
    if build is None:
        return False
    try:
        build(data_batch=(x_sample, y_sample))
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        log.debug("prebuild skipped: %s", exc)
        return False
    return True


def fit_inputs(
    dataset: Dataset, *, batch_size: int, shuffle: bool, device_pipeline: bool
) -> dict[str, Any]:
    """The data keyword arguments of ``model.fit``: NumPy arrays with ``batch_size`` and
    ``shuffle`` (Keras' pipeline), or with ``device_pipeline`` two ``tf.data`` datasets that
    shuffle (from the global seed the trial set), batch and prefetch in TensorFlow."""
    if not device_pipeline:
        return {
            "x": dataset.x_train,
            "y": dataset.y_train,
            "validation_data": (dataset.x_val, dataset.y_val),
            "batch_size": int(batch_size),
            "shuffle": bool(shuffle),
        }
    import tensorflow as tf

    def pipeline(x: Any, y: Any, training: bool) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if training and shuffle:
            ds = ds.shuffle(len(y), reshuffle_each_iteration=True)
        return ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)

    return {
        "x": pipeline(dataset.x_train, dataset.y_train, True),
        "validation_data": pipeline(dataset.x_val, dataset.y_val, False),
        "shuffle": False,  # the pipeline shuffles; Keras ignores (and warns about) its own
    }


def decide_mixed_precision(mode: str, capabilities: Sequence[tuple[int, int]]) -> bool:
    """``--mixed-precision``: ``off`` never; ``on`` whenever a GPU is visible; ``auto`` when
    GPUs are visible and every one has tensor cores (compute capability >= 7.0). On the CPU
    (``capabilities`` empty) always off: float16 is slower there. A GPU whose capability is
    unknown counts as without tensor cores."""
    if mode not in MIXED_PRECISION_MODES:
        raise ValueError(f"mixed precision must be one of {MIXED_PRECISION_MODES}, got {mode!r}")
    if mode == "off" or not capabilities:
        return False
    if mode == "on":
        return True
    return all(tuple(c) >= TENSOR_CORE_CAPABILITY for c in capabilities)
