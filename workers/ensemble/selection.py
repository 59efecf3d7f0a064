"""Which completed trials become ensemble members.

Two trials have the **same architecture** when every hyperparameter of the vocabulary's
``architecture`` group (``conv_blocks``, ``filters``, ``kernel_size``, ``residual``,
``dense_units``, ``dropout``, ``regularization``, ...) has the same value once the defaults are
filled in; trials that differ only in training hyperparameters (optimizer, learning rate, batch
size, schedule) or augmentation share one. Members are picked best first by the objective, one
per architecture; when there are fewer distinct architectures than members wanted, the best of
the remaining trials fill the places (an ensemble of near-copies still averages out some noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from search_spaces.vocabulary import VOCABULARY, with_defaults

ARCHITECTURE_NAMES: tuple[str, ...] = tuple(
    name for name, hp in VOCABULARY.items() if hp.group == "architecture"
)


@dataclass(frozen=True)
class Candidate:
    """A completed trial that has a saved model."""

    number: int
    value: float
    params: Mapping[str, Any] = field(default_factory=dict)


def architecture_key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The values that decide a trial's architecture (equal keys: the same architecture)."""
    full = with_defaults(params)
    return tuple((name, full[name]) for name in ARCHITECTURE_NAMES)


def rank(candidates: Iterable[Candidate], direction: str) -> list[Candidate]:
    """Best first by ``value`` (``direction`` ``maximize`` or ``minimize``); ties by number."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(candidates, key=lambda c: (sign * c.value, c.number))


def select_members(
    candidates: Sequence[Candidate], size: int, direction: str
) -> list[Candidate]:
    """Up to ``size`` members, best first, preferring distinct architectures (module doc)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    ranked = rank(candidates, direction)
    chosen: list[Candidate] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for c in ranked:
        key = architecture_key(c.params)
        if key not in seen:
            seen.add(key)
            chosen.append(c)
        if len(chosen) == size:
            return chosen
    picked = {c.number for c in chosen}
    chosen += [c for c in ranked if c.number not in picked][: size - len(chosen)]
    return chosen


def kept_numbers(candidates: Sequence[Candidate], size: int, direction: str) -> set[int]:
    """The trials whose models a worker keeps so that an ensemble of ``size`` can be built:
    the members :func:`select_members` would pick today."""
    return {c.number for c in select_members(candidates, size, direction)} if candidates else set()
