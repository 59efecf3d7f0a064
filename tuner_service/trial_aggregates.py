"""Summaries of finished trials that can be kept and extended (no SQL here; see reads.py).

Optuna's finished trials never change (its storage refuses updates to them), so the sums and
the best trial(s) of a study's oldest trials, all finished, stay true for good:
:class:`TrialReads` keeps one :class:`Prefix` per study and, on each read, adds only the
trials created since (the "tail"), instead of aggregating the whole study again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from optuna.study import StudyDirection
from optuna.trial import TrialState


@dataclass(frozen=True, order=True)
class Point:
    """A COMPLETE trial's values as losses (maximised objectives negated; ±inf kept)."""

    loss: tuple[float, ...]
    number: int
    trial_id: int


@dataclass(frozen=True)
class TailTrial:
    trial_id: int
    number: int
    state: TrialState
    sums: dict[str, float] = field(default_factory=dict)
    point: Point | None = None  # set for COMPLETE trials with every value


@dataclass(frozen=True)
class Prefix:
    """The study's trials with ``trial_id < upto``: ``n`` of them, all finished."""

    upto: int
    n: int
    sums: dict[str, float]
    best: tuple[Point, ...]
    directions: tuple[StudyDirection, ...]

    def extend(self, tail: Sequence[TailTrial]) -> Prefix:
        """Fold in the tail's trials up to the first one not finished yet."""
        upto, folded = self.upto, []
        for t in sorted(tail, key=lambda t: t.trial_id):
            if not t.state.is_finished():
                break
            folded.append(t)
            upto = t.trial_id + 1
        if not folded:
            return self
        return Prefix(
            upto=upto,
            n=self.n + len(folded),
            sums=add_sums(self.sums, folded),
            best=keep_best([*self.best, *points(folded)], len(self.directions)),
            directions=self.directions,
        )


def to_loss(values: Sequence[float], directions: Sequence[StudyDirection]) -> tuple[float, ...]:
    return tuple(
        -v if d == StudyDirection.MAXIMIZE else v for v, d in zip(values, directions, strict=True)
    )


def points(trials: Iterable[TailTrial]) -> list[Point]:
    return [t.point for t in trials if t.point is not None]


def add_sums(sums: dict[str, float], trials: Iterable[TailTrial]) -> dict[str, float]:
    out = dict(sums)
    for t in trials:
        for k, v in t.sums.items():
            out[k] = out.get(k, 0.0) + v
    return out


def keep_best(candidates: Iterable[Point], n_objectives: int) -> tuple[Point, ...]:
    """One objective: the lowest loss (then the lowest number), as Optuna's ``best_trial``
    (-inf < finite < +inf). Several: the Pareto front (equal points all stay), by number."""
    pts = [p for p in candidates if not any(map(math.isnan, p.loss))]
    if not pts:
        return ()
    if n_objectives == 1:
        return (min(pts, key=lambda p: (p.loss, p.number)),)
    front: list[Point] = []
    for p in sorted(pts):  # lexicographic: only an earlier point can dominate a later one
        if not any(_dominates(f.loss, p.loss) for f in front):
            front.append(p)
    return tuple(sorted(front, key=lambda p: p.number))


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    pairs = list(zip(a, b, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)
