"""Load the dataset a study names (:class:`tuner_service.spec.DatasetSpec`) as NumPy splits.

Every loader returns channels-last float32 inputs and int32 labels ``0..n_classes-1``:

* ``digits``, ``breast_cancer``, ``iris``, ``wine`` -- bundled with scikit-learn (offline).
  Digits are 8x8 images with pixel values 0..16, scaled by /16 to [0, 1] (the seeds scale
  0..255 images by /255; /16 is the same thing for digits) and shaped (8, 8, 1). The tabular
  ones are standardised with the mean/std of the training part only.
* ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` -- read from the Keras cache
  (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) in the layouts Keras' own loaders
  use; when a file is absent one download is attempted (with a short socket timeout) and on
  failure :class:`DatasetError` says which file to place where. Images are scaled by /255 and
  grayscale ones get a channel axis; the datasets' own test splits are used.
  (The files are read here rather than through ``keras.datasets.X.load_data()`` because Keras
  fixes its cache directory at import time and re-downloads any file whose hash differs.)
* ``npz`` -- ``x_train``, ``y_train`` (and optionally ``x_test``, ``y_test``) under the data root;
  uint8 inputs are scaled by /255, float inputs kept; any integer labels are remapped to
  ``0..n-1``.
* ``image_folder`` -- one sub-folder of images (PNG, JPEG, BMP, GIF; decoded with TensorFlow,
  imported only then) per class under the data root, resized (bilinear) to ``spec.image_size``
  (default 64x64) and scaled by /255; one channel when every image is grayscale, else RGB.
* ``synthetic`` -- generated, learnable data (images: a brightness level per class and channel
  plus oriented stripes; tabular: Gaussian blobs), seeded by ``spec.seed``.

Splits: a dataset's own test split is used when it has one; otherwise ``test_split`` is carved
off first, then ``validation_split`` of the rest -- both stratified and seeded with
``spec.seed``. ``max_samples`` caps the training part (a stratified, seeded subset).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import pickle
import socket
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner_service.spec import DatasetSpec

from .data_paths import DataPathError, resolve_data_path

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "Dataset",
    "DatasetCache",
    "DatasetError",
    "keras_cache_dir",
    "load_dataset",
    "resolve_data_path",
]

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = (64, 64)
DEFAULT_SYNTHETIC_SHAPE = (16, 16, 3)
DEFAULT_SYNTHETIC_CLASSES = 3
DEFAULT_SYNTHETIC_SAMPLES = 600
#: Seconds a Keras dataset download may wait on the network before giving up.
DOWNLOAD_TIMEOUT_S = 20.0
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DATA_ROOT_ENV = "TUNER_DATA_ROOT"

Array = np.ndarray


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


# --------------------------------------------------------------------------- helpers


def _fingerprint(name: str, n_classes: int, arrays: dict[str, Array]) -> str:
    h = hashlib.sha256()
    h.update(f"{name}|{n_classes}".encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"|{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _to_labels(y: Any, what: str) -> Array:
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


def _scale_images(x: Array) -> Array:
    """uint8 images to float32 in [0, 1]; float inputs kept; other ints cast."""
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    return x.astype(np.float32)


def _channels_last(x: Array) -> Array:
    """(n, H, W) -> (n, H, W, 1); other ranks unchanged."""
    return x[..., np.newaxis] if x.ndim == 3 else x


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


def _data_root(data_root: Path | None) -> Path:
    if data_root is not None:
        return Path(data_root)
    env = os.environ.get(DATA_ROOT_ENV)
    if not env:
        raise DatasetError(
            f"file datasets need a data root: set {DATA_ROOT_ENV} (or pass data_root)"
        )
    return Path(env)


def _confined(data_root: Path | None, path: str | None) -> tuple[Path, Path]:
    root = _data_root(data_root)
    if not path:
        raise DatasetError("this dataset needs a 'path' under the data root")
    try:
        resolved = resolve_data_path(root, path)
    except DataPathError as exc:
        raise DatasetError(str(exc)) from exc
    return root.expanduser().resolve(), resolved


# --------------------------------------------------------------------------- raw loaders
# Each returns (x, y, x_test, y_test) with x float32 channels-last and y integer labels; the
# test pair is None when the dataset has no test split of its own.

RawData = tuple[Array, Array, Array | None, Array | None]


def _load_bundled(name: str) -> RawData:
    from sklearn import datasets as skd

    if name == "digits":
        bunch = skd.load_digits()
        x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[..., np.newaxis]
        return x, np.asarray(bunch.target), None, None
    loader = {
        "breast_cancer": skd.load_breast_cancer,
        "iris": skd.load_iris,
        "wine": skd.load_wine,
    }[name]
    bunch = loader()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target), None, None


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


def _download(fname: str, origin: str, subdir: str, file_hash: str | None) -> Path:
    """One download attempt through ``keras.utils.get_file`` into the Keras cache."""
    import keras

    cache = keras_cache_dir()
    with _socket_timeout(DOWNLOAD_TIMEOUT_S):
        got = keras.utils.get_file(
            fname=fname, origin=origin, cache_dir=str(cache.parent),
            cache_subdir=subdir, file_hash=file_hash,
        )
    return Path(got)


def _fetch(name: str, fname: str, origin: str, subdir: str, file_hash: str | None,
           hint: str) -> Path:
    target = keras_cache_dir().parent / subdir / fname
    if target.is_file():
        return target
    try:
        got = _download(fname, origin, subdir, file_hash)
    except Exception as exc:
        raise DatasetError(
            f"{name} is not in the Keras cache and could not be downloaded ({exc}): {hint}"
        ) from exc
    if not got.is_file():
        raise DatasetError(f"{name}: download finished but {got} is missing: {hint}")
    return got


_MNIST_BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_MNIST_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "origin": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "hash": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "origin": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "hash": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    },
}


def _load_mnist() -> RawData:
    cache = keras_cache_dir()
    path = _fetch(
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
    return _channels_last(_scale_images(x)), y, _channels_last(_scale_images(xt)), yt


def _read_idx(path: Path, offset: int) -> Array:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def _load_fashion_mnist() -> RawData:
    folder = keras_cache_dir() / "fashion-mnist"
    hint = f"place {', '.join(_FASHION_FILES)} in {folder}/"
    paths = [
        _fetch("fashion_mnist", f, _MNIST_BASE + f, "datasets/fashion-mnist", None, hint)
        for f in _FASHION_FILES
    ]
    try:
        y = _read_idx(paths[0], 8)
        x = _read_idx(paths[1], 16).reshape(len(y), 28, 28)
        yt = _read_idx(paths[2], 8)
        xt = _read_idx(paths[3], 16).reshape(len(yt), 28, 28)
    except Exception as exc:
        raise DatasetError(f"fashion_mnist: files in {folder} are corrupt ({exc})") from exc
    return _channels_last(_scale_images(x)), y, _channels_last(_scale_images(xt)), yt


_PICKLE_ALLOWED = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _cifar_batch(path: Path, label_key: str) -> tuple[Array, Array]:
    with open(path, "rb") as fh:
        raw = _RestrictedUnpickler(fh, encoding="bytes").load()
    d = {(k.decode("utf8") if isinstance(k, bytes) else k): v for k, v in raw.items()}
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d[label_key])
    x = data.reshape(data.shape[0], 3, 32, 32).transpose(0, 2, 3, 1)
    return x, labels


def _safe_extract(tar: tarfile.TarFile, target: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
        return
    base = target.resolve()
    for member in tar.getmembers():  # Pythons without extraction filters
        dest = (base / member.name).resolve()
        if (dest != base and base not in dest.parents) or member.issym() or member.islnk():
            raise DatasetError(f"archive member {member.name!r} is unsafe")
    tar.extractall(target)


def _cifar_folder(name: str) -> Path:
    """The extracted batches folder, extracting a cached archive or downloading if needed."""
    info = _CIFAR[name]
    cache = keras_cache_dir()
    folder = info["folder"]
    candidates = [cache / f"{folder}-target" / folder, cache / folder]  # Keras >= 3.x, older
    for c in candidates:
        if c.is_dir():
            return c
    archives = [cache / f"{folder}-target_archive", cache / info["archive"],
                cache / f"{folder}.tar.gz"]
    archive = next((a for a in archives if a.is_file()), None)
    hint = (f"place {info['archive']} at {cache / info['archive']} "
            f"(or its extracted {folder} folder at {cache / folder})")
    if archive is None:
        archive = _fetch(name, info["archive"], info["origin"], "datasets", info["hash"], hint)
    target = cache / f"{folder}-target"
    try:
        with tarfile.open(archive, "r:*") as tar:
            _safe_extract(tar, target)
    except Exception as exc:
        raise DatasetError(f"{name}: cached archive {archive} is corrupt ({exc}): {hint}") from exc
    if not (target / folder).is_dir():
        raise DatasetError(f"{name}: archive {archive} has no {folder} folder: {hint}")
    return target / folder


def _load_cifar(name: str) -> RawData:
    folder = _cifar_folder(name)
    try:
        if name == "cifar10":
            parts = [_cifar_batch(folder / f"data_batch_{i}", "labels") for i in range(1, 6)]
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            xt, yt = _cifar_batch(folder / "test_batch", "labels")
        else:
            x, y = _cifar_batch(folder / "train", "fine_labels")
            xt, yt = _cifar_batch(folder / "test", "fine_labels")
    except Exception as exc:
        raise DatasetError(f"{name}: cached files in {folder} are missing or corrupt ({exc})") \
            from exc
    return _scale_images(x), y.reshape(-1), _scale_images(xt), yt.reshape(-1)


def _load_npz(spec: DatasetSpec, data_root: Path | None) -> RawData:
    _, path = _confined(data_root, spec.path)
    if not path.is_file():
        raise DatasetError(f"npz file {spec.path!r} not found under the data root ({path})")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"x_train", "y_train"} - keys
            if missing:
                raise DatasetError(
                    f"npz file {spec.path!r} lacks {', '.join(sorted(missing))} "
                    f"(has: {', '.join(sorted(keys)) or 'nothing'})"
                )
            if ("x_test" in keys) != ("y_test" in keys):
                raise DatasetError(
                    f"npz file {spec.path!r}: give both x_test and y_test or neither"
                )
            arrays = {k: np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")
                      if k in keys}
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"npz file {spec.path!r} is corrupt or unreadable ({exc})") from exc

    def inputs(key: str) -> Array:
        x = arrays[key]
        if x.dtype.kind not in "uifb":
            raise DatasetError(f"npz {key}: numeric array expected, got dtype {x.dtype}")
        if x.ndim < 2 or x.ndim > 4:
            raise DatasetError(
                f"npz {key}: shape {x.shape}; expected (n, features), (n, H, W) or (n, H, W, C)"
            )
        x = _channels_last(_scale_images(x))
        if not np.all(np.isfinite(x)):
            raise DatasetError(f"npz {key}: contains NaN or infinite values")
        return x

    x = inputs("x_train")
    y = _to_labels(arrays["y_train"], "npz y_train")
    if len(x) != len(y):
        raise DatasetError(f"npz: x_train has {len(x)} rows but y_train {len(y)}")
    if "x_test" not in arrays:
        return x, y, None, None
    xt = inputs("x_test")
    yt = _to_labels(arrays["y_test"], "npz y_test")
    if len(xt) != len(yt):
        raise DatasetError(f"npz: x_test has {len(xt)} rows but y_test {len(yt)}")
    if xt.shape[1:] != x.shape[1:]:
        raise DatasetError(f"npz: x_test samples have shape {xt.shape[1:]}, x_train {x.shape[1:]}")
    return x, y, xt, yt


def _decode_image(path: Path) -> Array:
    """uint8 (H, W, C) array of one image file (decoded by TensorFlow: PNG, JPEG, BMP, GIF)."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(
            tf.io.read_file(str(path)), channels=0, expand_animations=False
        )
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, ValueError) as exc:
        raise DatasetError(f"cannot read {path.name} ({str(exc).splitlines()[0]})") from exc
    return np.asarray(image.numpy(), dtype=np.uint8)


def _resize(images: list[Array], height: int, width: int, gray: bool) -> Array:
    import tensorflow as tf

    out = []
    for im in images:
        channels = im.shape[-1]
        if gray:
            im = im[..., :1]
        elif channels in (1, 2):  # gray (+ alpha) -> RGB
            im = np.repeat(im[..., :1], 3, axis=-1)
        else:  # RGB(A) -> RGB
            im = im[..., :3]
        resized = tf.image.resize(im, (height, width), method="bilinear").numpy()
        out.append(np.clip(resized, 0.0, 255.0) / np.float32(255.0))
    return np.stack(out).astype(np.float32)


def _load_image_folder(spec: DatasetSpec, data_root: Path | None) -> RawData:
    root, folder = _confined(data_root, spec.path)
    if not folder.is_dir():
        raise DatasetError(f"image folder {spec.path!r} not found under the data root ({folder})")
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"image folder {spec.path!r} needs one sub-folder per class (at least 2), "
            f"found {len(classes)}"
        )
    height, width = spec.image_size or DEFAULT_IMAGE_SIZE
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        found = sorted(
            f for f in cls.iterdir()
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not found:
            raise DatasetError(
                f"image folder {spec.path!r}: class folder {cls.name!r} has no images"
            )
        for f in found:
            real = f.resolve()
            if real != root and root not in real.parents:
                raise DatasetError(f"image {f} links outside the data root {root}")
            files.append((f, label))
    images: list[Array] = []
    for f, _ in files:
        try:
            images.append(_decode_image(f))
        except DatasetError as exc:
            raise DatasetError(f"image folder {spec.path!r}: {exc}") from exc
    gray = all(im.shape[-1] == 1 for im in images)
    x = _resize(images, int(height), int(width), gray)
    y = np.asarray([label for _, label in files])
    return x, y, None, None


def _load_synthetic(spec: DatasetSpec) -> RawData:
    shape = tuple(spec.shape or DEFAULT_SYNTHETIC_SHAPE)
    n_classes = spec.n_classes or DEFAULT_SYNTHETIC_CLASSES
    n = spec.n_samples or DEFAULT_SYNTHETIC_SAMPLES
    if not shape or len(shape) > 3 or any(int(d) < 1 for d in shape):
        raise DatasetError(f"synthetic: shape {shape} must be (features,), (H, W) or (H, W, C)")
    if n < 2 * n_classes:
        raise DatasetError(f"synthetic: {n} samples are too few for {n_classes} classes")
    rng = np.random.default_rng(spec.seed)
    y = rng.permutation(np.arange(n) % n_classes)
    if len(shape) == 1:
        centers = rng.normal(0.0, 1.5, size=(n_classes, shape[0]))
        x = centers[y] + rng.normal(0.0, 1.0, size=(n, shape[0]))
        return x.astype(np.float32), y, None, None
    h, w = int(shape[0]), int(shape[1])
    c = int(shape[2]) if len(shape) == 3 else 1
    # Class k: a brightness level per channel (evenly spaced levels, shuffled per channel) plus
    # stripes at angle pi*k/n_classes with a class frequency and a random phase, plus noise --
    # learnable from global averages (GAP heads) as well as from local patterns.
    levels = np.stack(
        [rng.permutation(np.linspace(0.25, 0.75, n_classes)) for _ in range(c)], axis=1
    )
    angles = np.pi * np.arange(n_classes) / n_classes
    freqs = rng.uniform(1.0, 2.5, size=n_classes) / max(h, w)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, size=n)
    proj = np.cos(angles)[y, None, None] * rows + np.sin(angles)[y, None, None] * cols
    stripes = 0.2 * np.sin(2 * np.pi * freqs[y, None, None] * proj + phase[:, None, None])
    x = levels[y, None, None, :] + stripes[..., None]
    x = x + rng.normal(0.0, 0.1, size=x.shape)
    return np.clip(x, 0.0, 1.0).astype(np.float32), y, None, None


# --------------------------------------------------------------------------- public API


def _raw(spec: DatasetSpec, data_root: Path | None) -> RawData:
    name = spec.name
    if name in ("digits", "breast_cancer", "iris", "wine"):
        return _load_bundled(name)
    if name == "mnist":
        return _load_mnist()
    if name == "fashion_mnist":
        return _load_fashion_mnist()
    if name in _CIFAR:
        return _load_cifar(name)
    if name == "npz":
        return _load_npz(spec, data_root)
    if name == "image_folder":
        return _load_image_folder(spec, data_root)
    if name == "synthetic":
        return _load_synthetic(spec)
    raise DatasetError(f"unknown dataset {name!r}")


def load_dataset(spec: DatasetSpec, *, data_root: Path | None = None) -> Dataset:
    """Load and split the dataset ``spec`` names.

    ``data_root`` (default: ``$TUNER_DATA_ROOT``) is where ``npz`` and ``image_folder`` paths
    live; paths leaving it are refused.

    Raises:
        DatasetError: with a message saying what is wrong (and, for a missing Keras dataset,
            which file to place where).
    """
    x, y, xt, yt = _raw(spec, data_root)
    y = _to_labels(y, spec.name)
    if len(y) == 0:
        raise DatasetError(f"{spec.name}: no samples")
    # Remap labels (any ints) to 0..n-1 over the train and test labels together.
    all_labels = np.unique(y if yt is None else np.concatenate([y, _to_labels(yt, spec.name)]))
    if len(all_labels) < 2:
        raise DatasetError(f"{spec.name}: needs at least 2 classes, found {len(all_labels)}")
    y = np.searchsorted(all_labels, y)
    if xt is not None and yt is not None:
        yt = np.searchsorted(all_labels, _to_labels(yt, spec.name))
    elif spec.test_split > 0:
        x, y, xt, yt = _split(x, y, spec.test_split, spec.seed, f"{spec.name} test split")
    else:
        xt, yt = x[:0], y[:0]
    x, y, xv, yv = _split(x, y, spec.validation_split, spec.seed, f"{spec.name} validation split")
    if spec.max_samples is not None:
        x, y = _subset(x, y, spec.max_samples, spec.seed)
    if spec.name in ("breast_cancer", "iris", "wine"):
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


def _cache_key(spec: DatasetSpec, data_root: Path | None) -> str:
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    if spec.name in ("npz", "image_folder") and root is None:
        root = os.environ.get(DATA_ROOT_ENV)
    return json.dumps({"spec": spec.model_dump(mode="json"), "data_root": root}, sort_keys=True)


class DatasetCache:
    """Per-process memo of loaded datasets keyed by the spec's canonical JSON and the data root,
    holding at most ``max_items`` (least recently used dropped first). Thread-safe."""

    def __init__(
        self,
        max_items: int = 2,
        loader: Callable[..., Dataset] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._loader = loader
        self._items: OrderedDict[str, Dataset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: DatasetSpec, data_root: Path | None = None) -> Dataset:
        key = _cache_key(spec, data_root)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
            loader = self._loader or load_dataset
            dataset = loader(spec, data_root=data_root)
            self._items[key] = dataset
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
            return dataset

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
