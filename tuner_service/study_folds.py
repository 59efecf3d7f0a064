"""SQL that builds and extends a study's :class:`~.trial_aggregates.Folded` summary.

Used by :meth:`.reads.TrialReads.overview`: the first read of a study in a process aggregates
its finished trials in the database (``GROUP BY``, ``SUM``, ``ORDER BY ... LIMIT 1``); later
reads look only at the trials created since and those seen unfinished (the "tail").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy.engine import Connection

from .optuna_tables import TRIAL_USER_ATTRS, TRIAL_VALUES, TRIALS, state_of, stored_value
from .trial_aggregates import Folded, Point, TailTrial, keep_best, to_loss

FINISHED = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]


def trial_total(conn: Connection, optuna_study_id: int) -> int:
    """How many trials the study has: Optuna numbers a study's trials 0, 1, 2, ... under the
    study's row lock, so the highest number + 1 (one step down the ``(study_id, number)``
    index of Alembic 0004) instead of a count of every row."""
    t = TRIALS.c
    last = conn.scalar(sa.select(sa.func.max(t.number)).where(t.study_id == optuna_study_id))
    return 0 if last is None else int(last) + 1


def fold_study(
    conn: Connection,
    optuna_study_id: int,
    directions: Sequence[StudyDirection],
    sum_keys: Sequence[str],
) -> tuple[Folded, list[TrialState]]:
    """The study's finished trials counted, summed and ranked by the database (``GROUP BY
    state``, ``SUM``, ``ORDER BY value LIMIT 1``, or the values alone for a Pareto front): once
    per study and process; and the states of its unfinished trials."""
    t = TRIALS.c
    mine = t.study_id == optuna_study_id
    last = conn.scalar(sa.select(sa.func.max(t.trial_id)).where(mine))
    upto = 0 if last is None else int(last) + 1
    unfinished = [TrialState.RUNNING, TrialState.WAITING]
    pending = conn.execute(
        sa.select(t.trial_id, t.state).where(mine, t.trial_id < upto, t.state.in_(unfinished))
    ).all()
    finished = [mine, t.trial_id < upto, t.state.in_(FINISHED)]
    by_state = {
        state_of(st): int(n)
        for st, n in conn.execute(
            sa.select(t.state, sa.func.count()).where(*finished).group_by(t.state)
        )
    }
    folded = Folded(
        upto=upto,
        pending=frozenset(int(i) for i, _ in pending),
        n=sum(by_state.values()),
        sums=_attr_sums(conn, finished, sum_keys),
        best=keep_best(_best_points(conn, finished, directions), len(directions)),
        directions=tuple(directions),
        by_state=by_state,
    )
    return folded, [state_of(st) for _, st in pending]


def _attr_sums(
    conn: Connection, where: list[sa.ColumnElement[bool]], keys: Sequence[str]
) -> dict[str, float]:
    """``SUM`` of numeric user attributes per key over the trials ``where`` selects (Optuna
    stores them as JSON text; the service writes these keys as JSON numbers)."""
    sums = dict.fromkeys(keys, 0.0)
    if not keys:
        return sums
    t, a = TRIALS.c, TRIAL_USER_ATTRS.c
    q = (
        sa.select(a.key, sa.func.sum(sa.cast(a.value_json, sa.Float)))
        .select_from(TRIALS.join(TRIAL_USER_ATTRS, a.trial_id == t.trial_id))
        .where(*where, a.key.in_(list(keys)))
        .group_by(a.key)
    )
    for key, total in conn.execute(q):
        sums[key] = float(total or 0.0)
    return sums


def _best_points(
    conn: Connection, where: list[sa.ColumnElement[bool]], directions: Sequence[StudyDirection]
) -> list[Point]:
    """One objective: the best COMPLETE trial by ``ORDER BY value LIMIT 1`` (Optuna's order,
    as ``RDBStorage.get_best_trial``: -inf < finite < +inf). Several: every COMPLETE trial's
    values (the front needs them all, but only the values are read)."""
    t, v = TRIALS.c, TRIAL_VALUES.c
    q = (
        sa.select(t.trial_id, t.number, v.objective, v.value, v.value_type)
        .select_from(TRIALS.join(TRIAL_VALUES, v.trial_id == t.trial_id))
        .where(*where, t.state == TrialState.COMPLETE)
    )
    if len(directions) == 1:
        rank = sa.case((v.value_type == "INF_NEG", -1), (v.value_type == "INF_POS", 1), else_=0)
        maximize = directions[0] == StudyDirection.MAXIMIZE
        q = q.where(v.objective == 0).order_by(
            rank.desc() if maximize else rank.asc(),
            v.value.desc() if maximize else v.value.asc(),
            t.number,
        ).limit(1)
    return _points(conn.execute(q), directions)


def _points(rows: Iterable[Any], directions: Sequence[StudyDirection]) -> list[Point]:
    """Rows ``(trial_id, number, objective, value, value_type)`` -> one Point per trial that
    has every objective's value."""
    by_trial: dict[int, tuple[int, dict[int, float]]] = {}
    for tid, number, objective, value, vtype in rows:
        values = by_trial.setdefault(int(tid), (int(number), {}))[1]
        values[int(objective)] = stored_value(value, vtype)
    n_obj = len(directions)
    return [
        Point(to_loss([vals[k] for k in range(n_obj)], directions), number, tid)
        for tid, (number, vals) in by_trial.items()
        if all(k in vals for k in range(n_obj))
    ]


def tail(
    conn: Connection, optuna_study_id: int, folded: Folded, sum_keys: Sequence[str]
) -> list[TailTrial]:
    """The study's trials from ``folded.upto`` on and its pending ones, with their sums and
    values (few: the running ones and those created since the last read)."""
    t = TRIALS.c
    cols = sa.select(t.trial_id, t.number, t.state)
    rows = [*conn.execute(cols.where(t.study_id == optuna_study_id, t.trial_id >= folded.upto))]
    if folded.pending:
        rows += conn.execute(cols.where(t.trial_id.in_(sorted(folded.pending))))
    if not rows:
        return []
    sums = tail_sums(conn, [int(r[0]) for r in rows], sum_keys)
    complete = [int(r[0]) for r in rows if state_of(r[2]) == TrialState.COMPLETE]
    pts: dict[int, Point] = {}
    if complete:
        v = TRIAL_VALUES.c
        q = (
            sa.select(t.trial_id, t.number, v.objective, v.value, v.value_type)
            .select_from(TRIALS.join(TRIAL_VALUES, v.trial_id == t.trial_id))
            .where(t.trial_id.in_(complete))
        )
        pts = {p.trial_id: p for p in _points(conn.execute(q), folded.directions)}
    return [
        TailTrial(int(tid), int(number), state_of(state), sums[int(tid)], pts.get(int(tid)))
        for tid, number, state in rows
    ]


def tail_sums(
    conn: Connection, trial_ids: Iterable[int], sum_keys: Sequence[str]
) -> dict[int, dict[str, float]]:
    """trial id -> its ``sum_keys`` user attributes (numbers), for a few trials."""
    ids = sorted(trial_ids)
    sums: dict[int, dict[str, float]] = {i: {} for i in ids}
    if ids and sum_keys:
        a = TRIAL_USER_ATTRS.c
        for tid, key, raw in conn.execute(
            sa.select(a.trial_id, a.key, a.value_json).where(
                a.trial_id.in_(ids), a.key.in_(list(sum_keys))
            )
        ):
            sums[tid][key] = _number(raw)
    return sums


def _number(raw: str | None) -> float:
    """A JSON number as stored by Optuna (anything else counts 0, as SQL's CAST would)."""
    try:
        v = json.loads(raw) if raw is not None else None
    except ValueError:
        return 0.0
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0
