"""``mnist`` and ``fashion_mnist`` from the Keras cache, and the cache itself (shared with
:mod:`.cifar`).

Files are read from ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``) in the layouts
Keras' own loaders use; when a file is absent one download is attempted (with a short socket
timeout) and on failure :class:`DatasetError` says which file to place where. Images are scaled
by /255 and get a channel axis; the datasets' own test splits are used. (The files are read here
rather than through ``keras.datasets.X.load_data()`` because Keras fixes its cache directory at
import time and re-downloads any file whose hash differs.)
"""

from __future__ import annotations

import gzip
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tuner_service.spec import DatasetSpec

from .base import Array, DatasetError, RawData, channels_last, scale_images

#: Seconds a Keras dataset download may wait on the network before giving up.
DOWNLOAD_TIMEOUT_S = 20.0

_MNIST_BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_MNIST_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded datasets: ``$KERAS_HOME/datasets`` (read at call time),
    else ``~/.keras/datasets`` (``/tmp/.keras/datasets`` when the home is not writable)."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return Path(home).expanduser() / "datasets"
    base = Path.home()
    if not os.access(base, os.W_OK):
        base = Path("/tmp")
    return base / ".keras" / "datasets"


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download(fname: str, origin: str, subdir: str, file_hash: str | None) -> Path:
    """One download attempt through ``keras.utils.get_file`` into the Keras cache."""
    import keras

    cache = keras_cache_dir()
    with _socket_timeout(DOWNLOAD_TIMEOUT_S):
        got = keras.utils.get_file(
            fname=fname, origin=origin, cache_dir=str(cache.parent),
            cache_subdir=subdir, file_hash=file_hash,
        )
    return Path(got)


def fetch(name: str, fname: str, origin: str, subdir: str, file_hash: str | None,
          hint: str) -> Path:
    """The cached file, downloaded once if absent; DatasetError ending in ``hint`` otherwise."""
    target = keras_cache_dir().parent / subdir / fname
    if target.is_file():
        return target
    try:
        got = download(fname, origin, subdir, file_hash)
    except Exception as exc:
        raise DatasetError(
            f"{name} is not in the Keras cache and could not be downloaded ({exc}): {hint}"
        ) from exc
    if not got.is_file():
        raise DatasetError(f"{name}: download finished but {got} is missing: {hint}")
    return got


def load_mnist(spec: DatasetSpec, data_root: Path | None) -> RawData:
    cache = keras_cache_dir()
    path = fetch(
        "mnist", "mnist.npz", _MNIST_BASE + "mnist.npz", "datasets", _MNIST_HASH,
        f"place mnist.npz at {cache / 'mnist.npz'}",
    )
    try:
        with np.load(path, allow_pickle=False) as f:
            parts = [np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    except Exception as exc:
        raise DatasetError(f"mnist: cached file {path} is corrupt or incomplete ({exc})") from exc
    x, y, xt, yt = parts
    if x.ndim != 3 or xt.ndim != 3:
        raise DatasetError(f"mnist: {path} holds images of shape {x.shape}, expected (n, 28, 28)")
    return channels_last(scale_images(x)), y, channels_last(scale_images(xt)), yt


def _read_idx(path: Path, offset: int) -> Array:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def load_fashion_mnist(spec: DatasetSpec, data_root: Path | None) -> RawData:
    folder = keras_cache_dir() / "fashion-mnist"
    hint = f"place {', '.join(_FASHION_FILES)} in {folder}/"
    paths = [
        fetch("fashion_mnist", f, _MNIST_BASE + f, "datasets/fashion-mnist", None, hint)
        for f in _FASHION_FILES
    ]
    try:
        y = _read_idx(paths[0], 8)
        x = _read_idx(paths[1], 16).reshape(len(y), 28, 28)
        yt = _read_idx(paths[2], 8)
        xt = _read_idx(paths[3], 16).reshape(len(yt), 28, 28)
    except Exception as exc:
        raise DatasetError(f"fashion_mnist: files in {folder} are corrupt ({exc})") from exc
    return channels_last(scale_images(x)), y, channels_last(scale_images(xt)), yt
