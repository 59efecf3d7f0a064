"""Every use of Keras Tuner's private fields, in this one module.

The engine keeps an oracle's whole state in the database, which Keras Tuner's public API
(``get_state``/``set_state``) does not fully cover, and runs oracles without their files and
process-wide locks. What that takes (keras-tuner 1.4.x, the range pinned in pyproject.toml):

- ``keras_tuner.src.engine.oracle.LOCKS`` / ``THREADS``: per-oracle entries dropped for a
  throw-away oracle (they would keep it alive for ever);
- ``keras_tuner.src.engine.trial.Trial`` / ``TrialStatus``: a trial rebuilt from its state;
- ``Oracle._save_trial``: replaced, so that no trial file is written;
- ``Oracle._retry_queue``: a lost trial handed back, as ``Oracle.reload()`` does;
- ``GridSearchOracle._populate_next`` and ``_ordered_ids`` (``_memory``, ``_data_to_index``,
  ``_next_index``, ``_last_index``): the grid's position, kept outside ``get_state()``.

:func:`missing_private_fields` lists what an installed Keras Tuner lacks of these;
tests/workers/test_kt_oracle_state.py fails loudly on any of them after an upgrade.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

MODULE_ATTRS = {
    "keras_tuner.src.engine.oracle": ("LOCKS", "THREADS"),
    "keras_tuner.src.engine.trial": ("Trial", "TrialStatus"),
}
ORACLE_ATTRS = ("_save_trial", "_retry_queue")
GRID_ATTRS = ("_populate_next", "_ordered_ids")
ORDERED_IDS_ATTRS = ("_memory", "_data_to_index", "_next_index", "_last_index")


def missing_private_fields(oracle: Any | None = None) -> list[str]:
    """The private names this module uses that Keras Tuner (or ``oracle``) lacks."""
    missing = []
    for module_name, names in MODULE_ATTRS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(module_name)
            continue
        missing += [f"{module_name}.{n}" for n in names if not hasattr(module, n)]
    if oracle is not None:
        kind = type(oracle).__name__
        missing += [f"{kind}.{n}" for n in ORACLE_ATTRS if not hasattr(oracle, n)]
        if kind == "GridSearchOracle":
            missing += [f"{kind}.{n}" for n in GRID_ATTRS if not hasattr(oracle, n)]
            ids = getattr(oracle, "_ordered_ids", None)
            missing += [f"{kind}._ordered_ids.{n}" for n in ORDERED_IDS_ATTRS
                        if not hasattr(ids, n)]
    return missing


def silence(oracle: Any) -> None:
    """No trial or oracle files, nothing printed: the state goes to the database."""
    oracle._save_trial = lambda trial: None
    oracle.save = lambda: None
    oracle.verbose = 0


def release(oracle: Any) -> None:
    """Drop Keras Tuner's process-wide lock entries for a throw-away oracle."""
    from keras_tuner.src.engine import oracle as oracle_module

    oracle_module.LOCKS.pop(oracle, None)
    oracle_module.THREADS.pop(oracle, None)


def trial_from_state(state: Mapping[str, Any]) -> Any:
    from keras_tuner.src.engine.trial import Trial

    return Trial.from_state(state)


def trial_status() -> Any:
    """Keras Tuner's ``TrialStatus`` (RUNNING, COMPLETED, FAILED, ...)."""
    from keras_tuner.src.engine.trial import TrialStatus

    return TrialStatus


def hand_back(oracle: Any, trial_id: str) -> None:
    """Put an ongoing trial in the oracle's retry queue (its next ``create_trial`` resumes it)."""
    oracle._retry_queue.append(trial_id)


def grid_state(oracle: Any) -> dict[str, Any] | None:
    """A GridSearchOracle's position in its grid (None for other oracles)."""
    if not hasattr(oracle, "_ordered_ids"):
        return None
    ids = oracle._ordered_ids
    return {
        "populate_next": list(oracle._populate_next),
        "memory": list(ids._memory),
        "data_to_index": dict(ids._data_to_index),
        # [key, index] pairs: the keys are ints and None (the head), which JSON object keys
        # cannot keep apart
        "next_index": [[k, v] for k, v in ids._next_index.items()],
        "last_index": ids._last_index,
    }


def load_grid_state(oracle: Any, grid: Mapping[str, Any]) -> None:
    oracle._populate_next = list(grid["populate_next"])
    ids = oracle._ordered_ids
    ids._memory = list(grid["memory"])
    ids._data_to_index = dict(grid["data_to_index"])
    ids._next_index.clear()
    pairs = grid["next_index"]
    if isinstance(pairs, Mapping):  # states stored before the pairs: "None" was the head
        pairs = [[None if k == "None" else int(k), v] for k, v in pairs.items()]
    ids._next_index.update({k: v for k, v in pairs})
    ids._last_index = grid["last_index"]
