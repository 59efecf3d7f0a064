"""Load the dataset a study names (:class:`tuner_service.spec.DatasetSpec`) as read-only splits.

The registered loader (:mod:`.registry`) gives the raw data; this step remaps labels, carves the
splits, caps the training part, standardises tabular features and fingerprints the result.

Splits: a dataset's own test split is used when it has one; otherwise ``test_split`` is carved
off first, then ``validation_split`` of the rest -- both stratified and seeded with
``spec.seed``. ``max_samples`` caps the training part (a stratified, seeded subset).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from tuner_service.spec import DatasetSpec

from .base import Array, Dataset, DatasetError, to_labels
from .registry import source

log = logging.getLogger(__name__)


def _fingerprint(name: str, n_classes: int, arrays: dict[str, Array]) -> str:
    h = hashlib.sha256()
    h.update(f"{name}|{n_classes}".encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"|{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _split(
    x: Array, y: Array, fraction: float, seed: int, what: str
) -> tuple[Array, Array, Array, Array]:
    """Stratified ``(x_keep, y_keep, x_out, y_out)`` with ``fraction`` of the rows out."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_out = int(np.ceil(fraction * n))
    if n_out < 1 or n - n_out < 1:
        raise DatasetError(f"{what}: {n} samples are too few to split off {fraction:g}")
    idx = np.arange(n)
    try:
        keep, out = train_test_split(idx, test_size=n_out, random_state=seed, stratify=y)
    except ValueError:
        log.info("%s: too few samples per class to stratify; splitting at random", what)
        keep, out = train_test_split(idx, test_size=n_out, random_state=seed, shuffle=True)
    keep, out = np.sort(keep), np.sort(out)
    return x[keep], y[keep], x[out], y[out]


def _subset(x: Array, y: Array, n: int, seed: int) -> tuple[Array, Array]:
    """A deterministic, stratified (when possible) subset of ``n`` rows, in original order."""
    from sklearn.model_selection import train_test_split

    if n >= len(y):
        return x, y
    idx = np.arange(len(y))
    try:
        keep = train_test_split(idx, train_size=n, random_state=seed, stratify=y)[0]
    except ValueError:
        keep = train_test_split(idx, train_size=n, random_state=seed, shuffle=True)[0]
    keep = np.sort(keep)
    return x[keep], y[keep]


def load_dataset(spec: DatasetSpec, *, data_root: Path | None = None) -> Dataset:
    """Load and split the dataset ``spec`` names.

    ``data_root`` (default: ``$TUNER_DATA_ROOT``) is where ``npz`` and ``image_folder`` paths
    live; paths leaving it are refused.

    Raises:
        DatasetError: with a message saying what is wrong (and, for a missing Keras dataset,
            which file to place where).
    """
    src = source(spec.name)
    x, y, xt, yt = src.load(spec, data_root)
    y = to_labels(y, spec.name)
    if len(y) == 0:
        raise DatasetError(f"{spec.name}: no samples")
    # Remap labels (any ints) to 0..n-1 over the train and test labels together.
    all_labels = np.unique(y if yt is None else np.concatenate([y, to_labels(yt, spec.name)]))
    if len(all_labels) < 2:
        raise DatasetError(f"{spec.name}: needs at least 2 classes, found {len(all_labels)}")
    y = np.searchsorted(all_labels, y)
    if xt is not None and yt is not None:
        yt = np.searchsorted(all_labels, to_labels(yt, spec.name))
    elif spec.test_split > 0:
        x, y, xt, yt = _split(x, y, spec.test_split, spec.seed, f"{spec.name} test split")
    else:
        xt, yt = x[:0], y[:0]
    x, y, xv, yv = _split(x, y, spec.validation_split, spec.seed, f"{spec.name} validation split")
    if spec.max_samples is not None:
        x, y = _subset(x, y, spec.max_samples, spec.seed)
    if src.standardise:
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std[std == 0] = 1.0
        x, xv, xt = ((a - mean) / std for a in (x, xv, xt))

    arrays = {
        "x_train": np.ascontiguousarray(x, dtype=np.float32),
        "y_train": np.ascontiguousarray(y, dtype=np.int32),
        "x_val": np.ascontiguousarray(xv, dtype=np.float32),
        "y_val": np.ascontiguousarray(yv, dtype=np.int32),
        "x_test": np.ascontiguousarray(xt, dtype=np.float32),
        "y_test": np.ascontiguousarray(yt, dtype=np.int32),
    }
    for a in arrays.values():
        a.setflags(write=False)
    n_classes = len(all_labels)
    return Dataset(
        name=spec.name,
        input_shape=tuple(int(d) for d in arrays["x_train"].shape[1:]),
        n_classes=n_classes,
        fingerprint=_fingerprint(spec.name, n_classes, arrays),
        **arrays,
    )
