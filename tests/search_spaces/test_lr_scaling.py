"""``lr_scaling``: the effective learning rate as docs/search-space.md documents it."""

from __future__ import annotations

import math

import pytest

from search_spaces.vocabulary import VOCABULARY, effective_learning_rate


@pytest.mark.parametrize(
    ("kind", "batch", "expected"),
    [
        ("none", 128, 0.01),
        ("linear", 128, 0.04),  # 0.01 x 128/32
        ("linear", 8, 0.0025),
        ("sqrt", 128, 0.02),  # 0.01 x sqrt(4)
        ("sqrt", 8, 0.005),
    ],
)
def test_effective_learning_rate(kind: str, batch: int, expected: float) -> None:
    params = {"learning_rate": 0.01, "batch_size": batch, "lr_scaling": kind}
    assert math.isclose(effective_learning_rate(params), expected)


def test_reference_batch_size_and_defaults() -> None:
    assert VOCABULARY["lr_scaling"].default == "none"
    assert effective_learning_rate({"learning_rate": 0.5, "batch_size": 999}) == 0.5
    p = {"learning_rate": 0.1, "batch_size": 256, "lr_scaling": "linear",
         "lr_reference_batch_size": 256}
    assert effective_learning_rate(p) == pytest.approx(0.1)


def test_unknown_scaling_names_the_choices() -> None:
    with pytest.raises(ValueError, match="none, linear, sqrt"):
        effective_learning_rate({"lr_scaling": "cubic"})
