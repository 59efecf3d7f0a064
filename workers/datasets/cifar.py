"""``cifar10`` and ``cifar100`` from the Keras cache (:mod:`.keras_cache`): the extracted batches
folder, else a cached archive (extracted safely), else one download. Batches are unpickled with
an allow-list (NumPy arrays only); images are scaled by /255; the datasets' own test splits are
used."""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner_service.spec import DatasetSpec

from .base import Array, DatasetError, RawData, scale_images
from .keras_cache import fetch, keras_cache_dir


@dataclass(frozen=True)
class _Archive:
    folder: str
    archive: str
    origin: str
    sha256: str


_CIFAR10 = _Archive(
    "cifar-10-batches-py",
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
)
_CIFAR100 = _Archive(
    "cifar-100-python",
    "cifar-100-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
)

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


def _cifar_folder(name: str, info: _Archive) -> Path:
    """The extracted batches folder, extracting a cached archive or downloading if needed."""
    cache = keras_cache_dir()
    folder = info.folder
    candidates = [cache / f"{folder}-target" / folder, cache / folder]  # Keras >= 3.x, older
    for c in candidates:
        if c.is_dir():
            return c
    archives = [cache / f"{folder}-target_archive", cache / info.archive,
                cache / f"{folder}.tar.gz"]
    archive = next((a for a in archives if a.is_file()), None)
    hint = (f"place {info.archive} at {cache / info.archive} "
            f"(or its extracted {folder} folder at {cache / folder})")
    if archive is None:
        archive = fetch(name, info.archive, info.origin, "datasets", info.sha256, hint)
    target = cache / f"{folder}-target"
    try:
        with tarfile.open(archive, "r:*") as tar:
            _safe_extract(tar, target)
    except Exception as exc:
        raise DatasetError(f"{name}: cached archive {archive} is corrupt ({exc}): {hint}") from exc
    if not (target / folder).is_dir():
        raise DatasetError(f"{name}: archive {archive} has no {folder} folder: {hint}")
    return target / folder


_Splits = tuple[Array, Array, Array, Array]


def _load(name: str, info: _Archive, read: Callable[[Path], _Splits]) -> RawData:
    folder = _cifar_folder(name, info)
    try:
        x, y, xt, yt = read(folder)
    except Exception as exc:
        raise DatasetError(f"{name}: cached files in {folder} are missing or corrupt ({exc})") \
            from exc
    return scale_images(x), y.reshape(-1), scale_images(xt), yt.reshape(-1)


def _read_cifar10(folder: Path) -> _Splits:
    parts = [_cifar_batch(folder / f"data_batch_{i}", "labels") for i in range(1, 6)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt, yt = _cifar_batch(folder / "test_batch", "labels")
    return x, y, xt, yt


def _read_cifar100(folder: Path) -> _Splits:
    x, y = _cifar_batch(folder / "train", "fine_labels")
    xt, yt = _cifar_batch(folder / "test", "fine_labels")
    return x, y, xt, yt


def load_cifar10(spec: DatasetSpec, data_root: Path | None) -> RawData:
    return _load("cifar10", _CIFAR10, _read_cifar10)


def load_cifar100(spec: DatasetSpec, data_root: Path | None) -> RawData:
    return _load("cifar100", _CIFAR100, _read_cifar100)
