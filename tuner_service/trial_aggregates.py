"""Summaries of finished trials that are kept and extended (no SQL here; see reads.py).

Optuna's finished trials never change (its storage refuses updates to them), so what is
summed or ranked over them stays true for good: :class:`TrialReads` keeps, per study, a
:class:`Folded` summary of every trial it has seen finished, and on each read looks only at
the trials created since and at those it saw unfinished (the "tail"), instead of aggregating
the whole study again. The same for the fleet's histogram of trial durations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
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
class Folded:
    """Every trial of a study with ``trial_id < upto``: ``n`` finished ones summed and
    ranked here, the unfinished ones' ids in ``pending`` (read again each time)."""

    upto: int
    pending: frozenset[int]
    n: int
    sums: dict[str, float]
    best: tuple[Point, ...]
    directions: tuple[StudyDirection, ...]
    by_state: Mapping[TrialState, int] = field(default_factory=dict)  # the n, by state

    def extend(self, tail: Sequence[TailTrial]) -> Folded:
        """Fold in the tail's finished trials; its unfinished ones become the pending."""
        done = [t for t in tail if t.state.is_finished()]
        by_state = dict(self.by_state)
        for t in done:
            by_state[t.state] = by_state.get(t.state, 0) + 1
        return Folded(
            upto=max([self.upto, *(t.trial_id + 1 for t in tail)]),
            pending=frozenset(t.trial_id for t in tail if not t.state.is_finished()),
            n=self.n + len(done),
            sums=add_sums(self.sums, (t.sums for t in done)),
            best=keep_best([*self.best, *points(done)], len(self.directions)),
            directions=self.directions,
            by_state=by_state,
        )


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts of durations at most each of ``bounds``, their count and sum."""

    bounds: tuple[float, ...]
    le: tuple[int, ...]
    count: int = 0
    total: float = 0.0

    @classmethod
    def of(cls, bounds: Sequence[float], seconds: Iterable[float]) -> Histogram:
        return cls(tuple(bounds), (0,) * len(bounds)).add(seconds)

    def add(self, seconds: Iterable[float]) -> Histogram:
        xs = [max(0.0, s) for s in seconds]
        if not xs:
            return self
        pairs = zip(self.le, self.bounds, strict=True)
        le = tuple(n + sum(1 for x in xs if x <= b) for n, b in pairs)
        return Histogram(self.bounds, le, self.count + len(xs), self.total + sum(xs))


@dataclass(frozen=True)
class FoldedDurations:
    """The fleet's trials with ``trial_id < upto``: ``n`` finished ones in the histogram
    (those with both times), the unfinished ones' ids in ``pending``."""

    upto: int
    pending: frozenset[int]
    n: int
    histogram: Histogram


def to_loss(values: Sequence[float], directions: Sequence[StudyDirection]) -> tuple[float, ...]:
    return tuple(
        -v if d == StudyDirection.MAXIMIZE else v for v, d in zip(values, directions, strict=True)
    )


def points(trials: Iterable[TailTrial]) -> list[Point]:
    return [t.point for t in trials if t.point is not None]


def add_sums(sums: dict[str, float], more: Iterable[Mapping[str, float]]) -> dict[str, float]:
    out = dict(sums)
    for m in more:
        for k, v in m.items():
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
