"""Out of device memory -> a smaller batch.

A trial whose training fails for lack of device memory (TensorFlow's
``ResourceExhaustedError``, or an allocator message such as "OOM when allocating tensor" /
"out of memory") is trained again in the same worker with half the batch size, down to
:data:`MIN_BATCH_SIZE`: 256 -> 128 -> ... -> 8 (a batch that halves below the floor tries the
floor itself: 12 -> 8). The learning rate follows the batch through ``lr_scaling`` (it is
computed from the parameters the model is built with); with ``lr_scaling="none"`` it stays.
Each try starts afresh (new model, epoch 0; epochs an earlier try reported keep their recorded
values). The trial records the batch it really trained with and how many halvings it took
(:data:`~tuner_service.optuna_bridge.ATTR_BATCH_SIZE_USED`,
:data:`~tuner_service.optuna_bridge.ATTR_BATCH_HALVINGS`); when even the floor does not fit it
fails with "does not fit in device memory even at batch 8", and the worker goes on serving.

Tests (and drills on a machine without a GPU) inject the error with the fault hook of
:mod:`workers.faults`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from search_spaces.vocabulary import effective_learning_rate, with_defaults
from tuner_service.optuna_bridge import (
    ATTR_BATCH_HALVINGS,
    ATTR_BATCH_SIZE_USED,
    ATTR_EFFECTIVE_LR,
)

from .runtime import clear_session
from .trial_runner import Outcome, TrialResult

log = logging.getLogger(__name__)

MIN_BATCH_SIZE = 8
_OOM_MESSAGES = ("out of memory", "oom when allocating", "resource_exhausted", "resource exhausted")


def is_out_of_memory(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the device ran out of memory."""
    if exc is None:
        return False
    if type(exc).__name__ == "ResourceExhaustedError":
        return True
    text = str(exc).lower()
    return any(m in text for m in _OOM_MESSAGES)


def next_batch_size(batch_size: int, floor: int = MIN_BATCH_SIZE) -> int | None:
    """The batch size of the next try, or None when ``batch_size`` is already at the floor."""
    if batch_size <= floor:
        return None
    return max(batch_size // 2, floor)


def train_with_batch_fallback(
    train: Callable[[Mapping[str, Any]], TrialResult],
    params: Mapping[str, Any],
    *,
    floor: int = MIN_BATCH_SIZE,
) -> TrialResult:
    """``train(params)``, again with half the batch size after each out-of-memory failure.

    The result's ``attrs`` carry the batch size used, the halvings and the effective learning
    rate of the last try; its ``wall_time_s`` counts every try.
    """
    current = dict(params)
    batch = int(with_defaults(current)["batch_size"])
    halvings = 0
    spent = 0.0  # wall time of the tries that ran out of memory
    while True:
        result = train(current)
        result.wall_time_s += spent
        result.attrs.update({
            ATTR_BATCH_SIZE_USED: batch,
            ATTR_BATCH_HALVINGS: halvings,
            ATTR_EFFECTIVE_LR: effective_learning_rate(current),
        })
        if result.outcome is not Outcome.FAILED or not is_out_of_memory(result.error):
            return result
        smaller = next_batch_size(batch, floor)
        if smaller is None:
            result.reason = f"does not fit in device memory even at batch {batch}"
            return result
        log.warning("out of device memory at batch %d: trying batch %d", batch, smaller)
        result.model = None
        spent = result.wall_time_s
        clear_session()  # free what the failed try allocated before the next one
        batch, halvings = smaller, halvings + 1
        current["batch_size"] = batch
