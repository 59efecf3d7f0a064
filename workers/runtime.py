"""Process-level TensorFlow settings of a worker: seeding, determinism, threads, GPUs.

``configure_threads`` and ``configure_gpu`` must run before TensorFlow executes its first op;
called later they log a warning and leave the settings as they are (never raise).
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from tuner_service.heap import freeze_startup_objects

__all__ = [
    "clear_session",
    "configure_gpu",
    "configure_threads",
    "drop_custom_gradients",
    "freeze_startup_objects",
    "gpu_capabilities",
    "seed_everything",
]

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow/Keras; with ``deterministic`` also ask TensorFlow for
    deterministic ops (slower; some GPU ops then raise instead of running nondeterministically)."""
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def configure_threads(n: int | None) -> None:
    """Use ``n`` intra-op and inter-op threads (``None`` or 0: TensorFlow's default, all cores).

    Safe to call more than once: once TensorFlow is initialised the settings cannot change, and
    the call logs and returns.
    """
    if not n:
        return
    n = int(n)
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    if intra == n and inter == n:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError as exc:
        log.warning("cannot set TensorFlow threads to %d (already initialised): %s", n, exc)


def configure_gpu(
    memory_growth: bool = True, memory_limit_mib: int | None = None, config: Any = None
) -> list[str]:
    """Names of the visible GPUs; with ``memory_growth`` each allocates memory as needed
    instead of grabbing it all (so several workers can share a GPU). With
    ``memory_limit_mib`` each is instead capped at that much (one logical device per GPU:
    one of several workers on a GPU, ``--trials-per-device``). ``[]`` without GPUs.
    ``config`` stands in for ``tf.config`` (tests)."""
    cfg = tf.config if config is None else config
    gpus = cfg.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            if memory_limit_mib is not None:
                cfg.set_logical_device_configuration(
                    gpu, [cfg.LogicalDeviceConfiguration(memory_limit=int(memory_limit_mib))]
                )
            elif memory_growth:
                cfg.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as exc:
            log.warning("cannot configure %s (already initialised): %s", gpu.name, exc)
    return [gpu.name for gpu in gpus]


def gpu_capabilities(config: Any = None) -> list[tuple[int, int]]:
    """The compute capability of each visible GPU (``(0, 0)`` where TensorFlow does not say);
    ``config`` stands in for ``tf.config`` (tests)."""
    cfg = tf.config if config is None else config
    out = []
    for gpu in cfg.list_physical_devices("GPU"):
        try:
            details = cfg.experimental.get_device_details(gpu)
        except (RuntimeError, ValueError):
            details = {}
        cc = details.get("compute_capability") or (0, 0)
        out.append((int(cc[0]), int(cc[1])))
    return out


def clear_session() -> None:
    """Drop the previous trial's models and graphs (call between trials).

    Keras' ``clear_session`` already runs a full ``gc.collect()``; a second pass would only
    double the idle time between trials (see BENCHMARKS.md, idle gap).
    """
    drop_custom_gradients()
    keras.backend.clear_session(free_memory=True)


def drop_custom_gradients() -> int:
    """Forget the gradient functions that TensorFlow registered for graph-mode
    ``tf.custom_gradient`` calls; returns how many.

    Each trace of a custom gradient in a ``tf.function`` (Keras' train step traces some on
    every new model) registers a function under a fresh name (``CustomGradient-N``) in a
    process-wide registry and never removes it; the function holds the traced graph, so every
    trial's train-step graph stayed alive (about 10 MB of RSS per small CNN trial, see
    BENCHMARKS.md, reliability). The registry is only read while a gradient is being traced:
    functions already traced do not need it, and a function traced again registers anew. So
    once a trial is over the entries can go. Uses TensorFlow internals: when they change, this
    does nothing.
    """
    try:
        registry = tf_ops._gradient_registry._registry
    except AttributeError:
        return 0
    stale = [k for k in list(registry) if isinstance(k, str) and k.startswith("CustomGradient-")]
    for key in stale:
        registry.pop(key, None)
    return len(stale)
