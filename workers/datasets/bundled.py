"""The datasets bundled with scikit-learn (offline): ``digits`` and the tabular ``breast_cancer``,
``iris`` and ``wine``.

Digits are 8x8 images with pixel values 0..16, scaled by /16 to [0, 1] (the seeds scale 0..255
images by /255; /16 is the same thing for digits) and shaped (8, 8, 1). The tabular ones are
returned as they are; the registry marks them for standardisation with the training part's mean
and std (done after the split, in :func:`workers.datasets.loading.load_dataset`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuner_service.spec import DatasetSpec

from .base import Loader, RawData


def load_digits(spec: DatasetSpec, data_root: Path | None) -> RawData:
    from sklearn import datasets as skd

    bunch = skd.load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[..., np.newaxis]
    return x, np.asarray(bunch.target), None, None


def tabular(sklearn_loader: str) -> Loader:
    """The loader of a scikit-learn tabular dataset (``load_iris``...), imported when called."""

    def load(spec: DatasetSpec, data_root: Path | None) -> RawData:
        from sklearn import datasets as skd

        bunch = getattr(skd, sklearn_loader)()
        return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target), None, None

    return load
