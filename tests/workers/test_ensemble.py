"""Ensembles: member selection, the three weighting methods, and the exported ``.keras`` file
(opened by plain Keras in a fresh process, predicting the weighted average of its members)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workers.ensemble import Candidate, architecture_key, fit_weights, log_loss, select_members
from workers.ensemble.weights import weighted_average


def _probs(rng: np.random.Generator, y: np.ndarray, classes: int, skill: float) -> np.ndarray:
    """Noisy class probabilities that put ``skill`` extra mass on the true class."""
    logits = rng.normal(size=(len(y), classes))
    logits[np.arange(len(y)), y] += skill
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- selection


def test_selection_prefers_distinct_architectures_best_first() -> None:
    small = {"conv_blocks": 1, "filters": 8}
    big = {"conv_blocks": 2, "filters": 16}
    cands = [
        Candidate(0, 0.90, {**small, "learning_rate": 0.01}),
        Candidate(1, 0.95, {**small, "learning_rate": 0.001}),  # same architecture as 0
        Candidate(2, 0.80, big),
        Candidate(3, 0.70, {"conv_blocks": 3}),
    ]
    assert [c.number for c in select_members(cands, 3, "maximize")] == [1, 2, 3]
    # more members than architectures: the best of the rest fill the places
    assert [c.number for c in select_members(cands, 4, "maximize")] == [1, 2, 3, 0]
    assert [c.number for c in select_members(cands, 2, "minimize")] == [3, 2]


def test_architecture_key_ignores_training_hyperparameters_and_fills_defaults() -> None:
    assert architecture_key({"learning_rate": 0.1, "batch_size": 8}) == architecture_key({})
    assert architecture_key({"conv_blocks": 3}) == architecture_key({})  # 3 is the default
    assert architecture_key({"dropout": 0.1}) != architecture_key({})


def test_selection_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="size"):
        select_members([Candidate(0, 1.0)], 0, "maximize")
    with pytest.raises(ValueError, match="direction"):
        select_members([Candidate(0, 1.0)], 1, "up")


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("method", ["mean", "weighted", "greedy"])
def test_weights_are_non_negative_and_sum_to_one(method: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=300)
    preds = [_probs(rng, y, 4, s) for s in (2.0, 1.0, 0.2)]
    w = fit_weights(method, preds, y)
    assert len(w) == 3
    assert all(v >= 0 for v in w)
    assert sum(w) == pytest.approx(1.0)


def test_mean_gives_equal_weights() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=50)
    assert fit_weights("mean", [_probs(rng, y, 3, 1.0) for _ in range(4)], y) == [0.25] * 4


def test_weighted_beats_mean_and_favours_the_better_member() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, size=600)
    preds = [_probs(rng, y, 5, 3.0), _probs(rng, y, 5, 0.0)]  # the second is pure noise
    w = fit_weights("weighted", preds, y)
    assert w[0] > 0.8
    mean_loss = log_loss(weighted_average(preds, [0.5, 0.5]), y)
    assert log_loss(weighted_average(preds, w), y) < mean_loss


def test_greedy_picks_with_replacement_and_skips_useless_members() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=400)
    good = _probs(rng, y, 3, 3.0)
    noise = np.full((400, 3), 1.0 / 3)  # adds nothing: never picked
    w = fit_weights("greedy", [noise, good, _probs(rng, y, 3, 3.0)], y, rounds=20)
    assert w[0] == 0.0
    assert w[1] > 0 and w[2] > 0
    assert all(abs(v * 20 - round(v * 20)) < 1e-9 for v in w)  # shares of 20 picks


def test_binary_sigmoid_predictions() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=200)
    p1 = np.clip(y * 0.7 + rng.uniform(0, 0.3, size=200), 0, 1).reshape(-1, 1)
    p2 = rng.uniform(size=(200, 1))
    w = fit_weights("weighted", [p1, p2], y)
    assert w[0] > w[1]
    assert weighted_average([p1, p2], w).shape == (200, 1)


def test_unknown_method_names_the_choices() -> None:
    with pytest.raises(ValueError, match="mean, weighted, greedy"):
        fit_weights("vote", [np.ones((2, 2)) / 2], np.array([0, 1]))


def test_members_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        fit_weights("mean", [np.ones((2, 3)) / 3, np.ones((2, 2)) / 2], np.array([0, 1]))


# --------------------------------------------------------------------------- export

_LOAD_AND_PREDICT = """
import json, sys, warnings
import numpy as np
import keras
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", UserWarning)
    model = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
print(json.dumps({"pred": model.predict(x, verbose=0).tolist(),
                  "layers": [l.name for l in model.layers],
                  "warnings": [str(w.message) for w in caught
                               if issubclass(w.category, UserWarning)]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("n_classes", [10, 2])
def test_exported_model_loads_with_plain_keras_and_averages_members(
    tmp_path: Path, n_classes: int
) -> None:
    from workers.ensemble.export import build_ensemble_model
    from workers.model_builder import build_model

    shape = (8, 8, 1)
    members = [  # equal layer names in every member; a custom loss; mixed precision
        build_model({"conv_blocks": 1, "filters": 4, "dense_units": 8, "label_smoothing": 0.1},
                    shape, n_classes),
        build_model({"conv_blocks": 2, "filters": 4, "dense_units": 8}, shape, n_classes,
                    mixed_precision=True),
        build_model({"conv_blocks": 0, "dense_units": 8}, shape, n_classes),
    ]
    weights = [0.5, 0.3, 0.2]
    x = np.random.default_rng(0).random((16, *shape), dtype=np.float32)
    expected = weighted_average([m.predict(x, verbose=0) for m in members], weights)

    path = tmp_path / "ensemble.keras"
    build_ensemble_model(members, weights).save(path)
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_PREDICT, str(path), str(tmp_path / "x.npy")],
        capture_output=True, text=True, check=True,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(loaded["pred"]), expected, atol=1e-5)
    assert {"member_0", "member_1", "member_2"} <= set(loaded["layers"])
    assert loaded["warnings"] == []  # e.g. no "Skipping variable loading for optimizer"


@pytest.mark.slow
def test_zero_weight_members_are_left_out() -> None:
    import keras

    from workers.ensemble.export import build_ensemble_model
    from workers.model_builder import build_model

    a = build_model({"conv_blocks": 0, "dense_units": 4}, (6,), 3)
    b = build_model({"conv_blocks": 0, "dense_units": 5}, (6,), 3)
    model = build_ensemble_model([a, b], [1.0, 0.0])
    assert [layer.name for layer in model.layers if isinstance(layer, keras.Model)] == [
        "member_0"
    ]
    x = np.random.default_rng(1).random((4, 6), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), a.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="positive weight"):
        build_ensemble_model([a, b], [0.0, 0.0])
