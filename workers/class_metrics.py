"""Per-class precision, recall and the confusion matrix of a model on a labelled split."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def predicted_labels(probabilities: Any) -> np.ndarray:
    """Class ids from a model's outputs: one sigmoid unit (two classes) or one unit a class."""
    p = np.asarray(probabilities)
    if p.ndim == 1 or p.shape[-1] == 1:
        return (p.reshape(-1) > 0.5).astype(np.int64)
    return np.argmax(p, axis=-1).astype(np.int64)


def per_class_summary(y_true: Any, y_pred: Any, n_classes: int) -> dict[str, Any]:
    """``labels``, ``precision``, ``recall``, ``f1``, ``support`` (one entry a class) and
    ``confusion_matrix`` (rows: true class, columns: predicted), JSON-ready. A class never
    predicted has precision 0 (scikit-learn's ``zero_division=0``)."""
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "labels": labels,
        "precision": [float(v) for v in precision],
        "recall": [float(v) for v in recall],
        "f1": [float(v) for v in f1],
        "support": [int(v) for v in support],
        "confusion_matrix": matrix.astype(int).tolist(),
    }
