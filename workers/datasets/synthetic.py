"""``synthetic``: generated, learnable data, seeded by ``spec.seed`` -- images: a brightness level
per class and channel plus oriented stripes; tabular (a 1-D ``shape``): Gaussian blobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuner_service.spec import DatasetSpec

from .base import DatasetError, RawData

DEFAULT_SYNTHETIC_SHAPE = (16, 16, 3)
DEFAULT_SYNTHETIC_CLASSES = 3
DEFAULT_SYNTHETIC_SAMPLES = 600


def load_synthetic(spec: DatasetSpec, data_root: Path | None) -> RawData:
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
