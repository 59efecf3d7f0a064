"""Fault hooks: errors injected into training, for tests and drills.

``TUNER_FAULT_OOM_ABOVE_BATCH=N`` in a worker's environment: every training whose batch size is
above ``N`` raises TensorFlow's ``ResourceExhaustedError`` at its first batch, as a device that
runs out of memory does (see :mod:`workers.oom`). Unset (the default), nothing is injected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import keras

from search_spaces.vocabulary import with_defaults

OOM_ABOVE_BATCH_ENV = "TUNER_FAULT_OOM_ABOVE_BATCH"


class _InjectOutOfMemory(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        import tensorflow as tf

        raise tf.errors.ResourceExhaustedError(
            None, None, f"OOM when allocating tensor (injected by {OOM_ABOVE_BATCH_ENV})"
        )


def fault_callbacks(params: Mapping[str, Any]) -> list[keras.callbacks.Callback]:
    """The callbacks the fault hooks in the environment ask for (none when unset)."""
    limit = os.environ.get(OOM_ABOVE_BATCH_ENV)
    if limit and int(with_defaults(params)["batch_size"]) > int(limit):
        return [_InjectOutOfMemory()]
    return []
