"""Members' weights from their validation predictions.

Every method returns non-negative weights that sum to 1, one per member (a member may get 0):

* ``mean`` -- equal weights;
* ``weighted`` -- SciPy's Nelder-Mead over unconstrained ``z``, the weights being
  ``|z| / sum(|z|)`` (normalised, non-negative), minimising the validation log-loss of the
  weighted average; it starts from equal weights and keeps them if it cannot do better;
* ``greedy`` -- Caruana et al. (2004) ensemble selection with replacement: starting from the
  empty ensemble, ``rounds`` times add the member (repeats allowed) whose addition gives the
  lowest validation log-loss of the average; a member's weight is its share of the picks.

Predictions are class probabilities: ``(n, classes)`` for softmax outputs, or ``(n,)`` /
``(n, 1)`` sigmoid outputs of a binary problem (read as the probability of class 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("mean", "weighted", "greedy")
EPS = 1e-7


def _as_two_dim(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        q = p.reshape(-1)
        return np.stack([1.0 - q, q], axis=1)
    if p.ndim != 2:
        raise ValueError(f"predictions must be (n,), (n, 1) or (n, classes), got {p.shape}")
    return p


def weighted_average(predictions: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``sum_i w_i * p_i`` in the members' own shape."""
    if len(predictions) != len(weights):
        raise ValueError(f"{len(predictions)} predictions but {len(weights)} weights")
    total = np.zeros_like(np.asarray(predictions[0], dtype=np.float64))
    for p, w in zip(predictions, weights, strict=True):
        total += float(w) * np.asarray(p, dtype=np.float64)
    return total


def log_loss(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities clipped to EPS)."""
    p = _as_two_dim(probabilities)
    labels = np.asarray(y).reshape(-1).astype(int)
    if len(labels) != len(p):
        raise ValueError(f"{len(p)} predictions but {len(labels)} labels")
    picked = np.clip(p[np.arange(len(labels)), labels], EPS, 1.0)
    return float(-np.mean(np.log(picked)))


def _normalise(z: np.ndarray) -> np.ndarray:
    a = np.abs(np.asarray(z, dtype=np.float64))
    s = float(a.sum())
    return np.full(len(a), 1.0 / len(a)) if s == 0.0 else a / s


def _stack(predictions: Sequence[np.ndarray]) -> np.ndarray:
    if not predictions:
        raise ValueError("an ensemble needs at least one member")
    stacked = [_as_two_dim(p) for p in predictions]
    shapes = {s.shape for s in stacked}
    if len(shapes) != 1:
        raise ValueError(f"members' predictions differ in shape: {sorted(shapes)}")
    return np.stack(stacked)  # (members, n, classes)


def _nelder_mead(stack: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    k = stack.shape[0]
    start = np.full(k, 1.0 / k)

    def loss(z: np.ndarray) -> float:
        return log_loss(np.tensordot(_normalise(z), stack, axes=1), y)

    options = {"xatol": 1e-4, "fatol": 1e-7, "maxiter": 400 * k}
    result = minimize(loss, start, method="Nelder-Mead", options=options)
    best = _normalise(result.x)
    return best if loss(best) <= loss(start) else start


def _greedy(stack: np.ndarray, y: np.ndarray, rounds: int) -> np.ndarray:
    k = stack.shape[0]
    counts = np.zeros(k, dtype=np.int64)
    running = np.zeros_like(stack[0])
    for step in range(1, rounds + 1):
        losses = [log_loss((running + stack[i]) / step, y) for i in range(k)]
        pick = int(np.argmin(losses))  # ties: the earlier (better-ranked) member
        counts[pick] += 1
        running += stack[pick]
    return counts / counts.sum()


def fit_weights(
    method: str,
    predictions: Sequence[np.ndarray],
    y: np.ndarray,
    *,
    rounds: int | None = None,
) -> list[float]:
    """Weights of the members (in the order given) by ``method`` (module doc).

    ``rounds`` (greedy only) defaults to 10 picks per member.

    Raises:
        ValueError: an unknown method, no members, or predictions of different shapes.
    """
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; choose one of {', '.join(METHODS)}")
    stack = _stack(predictions)
    k = stack.shape[0]
    if method == "mean" or k == 1:
        w = np.full(k, 1.0 / k)
    elif method == "weighted":
        w = _nelder_mead(stack, np.asarray(y))
    else:
        w = _greedy(stack, np.asarray(y), rounds or 10 * k)
    return [float(v) for v in w]
