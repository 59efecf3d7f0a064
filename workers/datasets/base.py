"""What every dataset loader shares: the :class:`Dataset` it ends in, :class:`DatasetError`, the
raw form a loader returns (:data:`RawData`) and the array and data-root helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner_service.spec import DatasetSpec

from ..data_paths import DataPathError, resolve_data_path

DATA_ROOT_ENV = "TUNER_DATA_ROOT"

Array = np.ndarray

#: What a loader returns: ``(x, y, x_test, y_test)`` with x float32 channels-last and y integer
#: labels; the test pair is None when the dataset has no test split of its own.
RawData = tuple[Array, Array, Array | None, Array | None]

#: A loader: the study's dataset spec and the data root (None: ``$TUNER_DATA_ROOT``) -> RawData.
Loader = Callable[[DatasetSpec, Path | None], RawData]


class DatasetError(ValueError):
    """The dataset cannot be loaded (missing or corrupt file, bad layout, path outside the data
    root, ...). The message says what to fix."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """The splits of one dataset; arrays are read-only (shared across trials by the cache)."""

    name: str
    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    input_shape: tuple[int, ...]
    n_classes: int
    fingerprint: str

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def to_labels(y: Any, what: str) -> Array:
    """A 1-D int64 array of class ids (column vectors flattened, integral floats accepted)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DatasetError(f"{what}: labels must be a 1-D array of class ids, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DatasetError(f"{what}: labels must be integer class ids")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iub":
        raise DatasetError(f"{what}: labels must be integer class ids, got dtype {y.dtype}")
    return y.astype(np.int64)


def scale_images(x: Array) -> Array:
    """uint8 images to float32 in [0, 1]; float inputs kept; other ints cast."""
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    return x.astype(np.float32)


def channels_last(x: Array) -> Array:
    """(n, H, W) -> (n, H, W, 1); other ranks unchanged."""
    return x[..., np.newaxis] if x.ndim == 3 else x


def data_root_or_env(data_root: Path | None) -> Path:
    """``data_root``, else ``$TUNER_DATA_ROOT``; DatasetError when neither is set."""
    if data_root is not None:
        return Path(data_root)
    env = os.environ.get(DATA_ROOT_ENV)
    if not env:
        raise DatasetError(
            f"file datasets need a data root: set {DATA_ROOT_ENV} (or pass data_root)"
        )
    return Path(env)


def confined(data_root: Path | None, path: str | None) -> tuple[Path, Path]:
    """``(resolved data root, resolved path)`` for a path that must stay under the data root."""
    root = data_root_or_env(data_root)
    if not path:
        raise DatasetError("this dataset needs a 'path' under the data root")
    try:
        resolved = resolve_data_path(root, path)
    except DataPathError as exc:
        raise DatasetError(str(exc)) from exc
    return root.expanduser().resolve(), resolved
