"""Dataset name -> its :class:`Source` (the loader and how the loading step treats its data).

Adding a dataset: one loader module (``(spec, data_root) -> RawData``), one line here, and its
name in :data:`tuner_service.spec.DATASET_NAMES` (the control plane validates names without
importing the workers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .base import DatasetError, Loader
from .bundled import load_digits, tabular
from .cifar import load_cifar10, load_cifar100
from .image_folder import load_image_folder
from .keras_cache import load_fashion_mnist, load_mnist
from .npz import load_npz
from .synthetic import load_synthetic


@dataclass(frozen=True)
class Source:
    """How one dataset is loaded.

    ``standardise``: tabular features, scaled with the training part's mean and std.
    ``reads_data_root``: its files live under the data root, so the root is part of the cache key.
    """

    load: Loader
    standardise: bool = False
    reads_data_root: bool = False


SOURCES: Mapping[str, Source] = {
    "digits": Source(load_digits),
    "breast_cancer": Source(tabular("load_breast_cancer"), standardise=True),
    "iris": Source(tabular("load_iris"), standardise=True),
    "wine": Source(tabular("load_wine"), standardise=True),
    "mnist": Source(load_mnist),
    "fashion_mnist": Source(load_fashion_mnist),
    "cifar10": Source(load_cifar10),
    "cifar100": Source(load_cifar100),
    "npz": Source(load_npz, reads_data_root=True),
    "image_folder": Source(load_image_folder, reads_data_root=True),
    "synthetic": Source(load_synthetic),
}


def source(name: str) -> Source:
    """The source registered under ``name``; DatasetError for a name nobody registered."""
    try:
        return SOURCES[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}") from None
