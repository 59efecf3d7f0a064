"""Load the dataset a study names (:class:`tuner_service.spec.DatasetSpec`) as NumPy splits.

Every loader returns channels-last float32 inputs and integer labels; :func:`load_dataset`
remaps them to ``0..n_classes-1`` (int32) and carves the splits. One module per source, each
registered by name in :mod:`.registry`:

* :mod:`.bundled` -- ``digits``, ``breast_cancer``, ``iris``, ``wine`` (scikit-learn, offline).
* :mod:`.keras_cache` and :mod:`.cifar` -- ``mnist``, ``fashion_mnist``, ``cifar10``,
  ``cifar100`` from the Keras cache (one download attempt when a file is absent; the error says
  which file to place where).
* :mod:`.npz` and :mod:`.image_folder` -- files under the data root (``$TUNER_DATA_ROOT``);
  paths leaving it are refused.
* :mod:`.synthetic` -- generated, learnable data seeded by ``spec.seed``.

:mod:`.loading` holds the splits (:func:`load_dataset`), :mod:`.cache` the per-process
:class:`DatasetCache`. Nothing here imports TensorFlow until an image folder is decoded or a
Keras file downloaded.
"""

from ..data_paths import resolve_data_path
from .base import Dataset, DatasetError
from .cache import DatasetCache
from .image_folder import DEFAULT_IMAGE_SIZE
from .keras_cache import keras_cache_dir
from .loading import load_dataset

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "Dataset",
    "DatasetCache",
    "DatasetError",
    "keras_cache_dir",
    "load_dataset",
    "resolve_data_path",
]
