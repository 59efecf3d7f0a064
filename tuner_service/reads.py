"""Reads of a study's trials whose cost follows the page, not the study.

Every query of Optuna's tables that the control plane runs on a read path lives here: state
counts, totals of the trials' recorded seconds, the best trial(s) and one page of trials, each
cut or aggregated by the database (``GROUP BY``, ``SUM``, ``ORDER BY number LIMIT/OFFSET``,
``ORDER BY value LIMIT 1``), with the page's parameters, values, intermediate values and
attributes fetched for that page's trials only. They use the indexes of Alembic revision 0004
and the table declarations of :mod:`tuner_service.optuna_tables`. Rows become ``FrozenTrial``
exactly as ``RDBStorage`` builds them, so :func:`tuner_service.optuna_bridge.trial_to_dict`
shows them unchanged.

On SQLite these run on an engine whose transactions are plain (deferred) ``BEGIN``: readers
take no write lock and, under WAL, never wait for a worker's write.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .db import db_retry
from .models import LeaseRow, StudyRow
from .optuna_tables import (
    STUDY_DIRECTIONS,
    TRIAL_INTERMEDIATE_VALUES,
    TRIAL_PARAMS,
    TRIAL_SYSTEM_ATTRS,
    TRIAL_USER_ATTRS,
    TRIAL_VALUES,
    TRIALS,
    local_time,
    state_of,
    stored_value,
)
from .states import StudyStatus
from .trial_aggregates import Point, Prefix, TailTrial, add_sums, keep_best, points, to_loss


@dataclass(frozen=True)
class StudyOverview:
    """What a study's summary shows, read in one snapshot."""

    directions: list[StudyDirection]
    counts: dict[str, int]  # every TrialState, lower-case names
    sums: dict[str, float]  # user attribute key -> sum over the study's trials
    best: list[FrozenTrial]  # see TrialReads.best


class TrialReads:
    """Read-only queries of Optuna's trial tables (and our lease rows) for one engine.

    Keeps, per study, a :class:`Prefix` of its oldest trials that are all finished (their
    sums and best trial(s)); a read aggregates only the trials created after it. The prefix
    is checked on every read against the study's trial count (``GROUP BY state``, from an
    index) and rebuilt when a trial appeared below it, so it is never stale.
    """

    def __init__(self, engine: Engine, *, sum_keys: Sequence[str] = ()) -> None:
        """``sum_keys``: numeric user attributes that :meth:`overview` sums."""
        self.engine = engine
        self.sum_keys = tuple(sum_keys)
        self._prefixes: dict[int, Prefix] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One transaction, one snapshot: SQLite's deferred ``BEGIN`` under WAL, elsewhere
        ``REPEATABLE READ`` (a plain snapshot for a read-only transaction)."""
        with self.engine.connect() as conn:
            if conn.dialect.name != "sqlite":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # --- aggregates -----------------------------------------------------------------------
    @db_retry()
    def overview(self, optuna_study_id: int) -> StudyOverview:
        """Directions, trials by state (``GROUP BY state`` on an index), the sums of the
        ``sum_keys`` user attributes and the best trial(s), in one snapshot; only the trials
        after the study's finished prefix are aggregated."""
        with self._read() as conn:
            directions = _directions(conn, optuna_study_id)
            counts = _state_counts(conn, optuna_study_id)
            prefix, tail = self._prefix_and_tail(conn, optuna_study_id, directions, counts)
            best = keep_best([*prefix.best, *points(tail)], len(directions))
            return StudyOverview(
                directions=directions,
                counts=counts,
                sums=add_sums(prefix.sums, tail),
                best=_frozen_trials(conn, [p.trial_id for p in best]),
            )

    def _prefix_and_tail(
        self,
        conn: Connection,
        optuna_study_id: int,
        directions: list[StudyDirection],
        counts: dict[str, int],
    ) -> tuple[Prefix, list[TailTrial]]:
        with self._lock:
            cached = self._prefixes.get(optuna_study_id)
        prefix = cached if cached and cached.directions == tuple(directions) else None
        tail: list[TailTrial] = []
        if prefix is not None:
            tail = _tail(conn, optuna_study_id, prefix, self.sum_keys)
            if prefix.n + len(tail) != sum(counts.values()):
                prefix = None  # a trial appeared below the prefix (or the study was replaced)
        if prefix is None:
            prefix = _build_prefix(conn, optuna_study_id, directions, self.sum_keys)
            tail = _tail(conn, optuna_study_id, prefix, self.sum_keys)
        grown = prefix.extend(tail)
        with self._lock:
            if len(self._prefixes) > 1000:  # studies read by this process: keep it bounded
                self._prefixes.clear()
            self._prefixes[optuna_study_id] = grown
        return prefix, tail

    @db_retry(max_wait_s=5.0)  # a scrape has a deadline: fail fast, report the outage
    def all_studies_states(self) -> dict[str, int]:
        """Trials of the service's studies by Optuna state name (``COMPLETE``, ...)."""
        t = TRIALS.c
        q = (
            sa.select(t.state, sa.func.count())
            .select_from(TRIALS)
            .join(StudyRow, StudyRow.optuna_study_id == t.study_id)
            .group_by(t.state)
        )
        with self._read() as conn:
            return {state_of(st).name: int(n) for st, n in conn.execute(q)}

    # --- pages ----------------------------------------------------------------------------
    @db_retry()
    def page(
        self,
        optuna_study_id: int,
        *,
        states: Sequence[TrialState] | None = None,
        limit: int,
        offset: int,
    ) -> tuple[list[FrozenTrial], int]:
        """Trials ordered by number, ``limit`` from ``offset`` (optionally of some states
        only), and how many trials match in all."""
        t = TRIALS.c
        where = [t.study_id == optuna_study_id]
        if states is not None:
            where.append(t.state.in_(list(states)))
        ids_q = (
            sa.select(t.trial_id).where(*where).order_by(t.number).limit(limit).offset(offset)
        )
        count_q = sa.select(sa.func.count()).select_from(TRIALS).where(*where)
        with self._read() as conn:
            ids = [int(i) for i in conn.scalars(ids_q)]
            total = int(conn.scalar(count_q) or 0)
            return _frozen_trials(conn, ids), total

    @db_retry()
    def trials_by_number(self, optuna_study_id: int, numbers: Iterable[int]) -> list[FrozenTrial]:
        """The study's trials with these numbers, ordered by number."""
        wanted = sorted(set(numbers))
        if not wanted:
            return []
        t = TRIALS.c
        q = sa.select(t.trial_id).where(t.study_id == optuna_study_id, t.number.in_(wanted))
        with self._read() as conn:
            return _frozen_trials(conn, [int(i) for i in conn.scalars(q)])

    # --- best -----------------------------------------------------------------------------
    @db_retry()
    def best(self, optuna_study_id: int) -> list[FrozenTrial]:
        """The best COMPLETE trial (one objective; ties go to the lowest number) or the Pareto
        front (several), as in :meth:`overview`; empty when no trial completed."""
        return self.overview(optuna_study_id).best

    # --- retries --------------------------------------------------------------------------
    @db_retry()
    def system_attr_values(self, optuna_study_id: int, key: str) -> list[tuple[int, Any]]:
        """``(trial number, value)`` of every trial of the study that has system attribute
        ``key`` (e.g. ``retry_history``), ordered by number."""
        t, a = TRIALS.c, TRIAL_SYSTEM_ATTRS.c
        q = (
            sa.select(t.number, a.value_json)
            .select_from(TRIALS.join(TRIAL_SYSTEM_ATTRS, a.trial_id == t.trial_id))
            .where(t.study_id == optuna_study_id, a.key == key)
            .order_by(t.number)
        )
        with self._read() as conn:
            return [(int(n), json.loads(v)) for n, v in conn.execute(q)]

    # --- our lease rows -------------------------------------------------------------------
    @db_retry()
    def workers_of(self, study_id: int, numbers: Iterable[int]) -> dict[int, str]:
        """trial number -> the worker that holds or held it (latest lease), for ``numbers``."""
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        q = (
            sa.select(LeaseRow.trial_number, LeaseRow.worker_id)
            .where(LeaseRow.study_id == study_id, LeaseRow.trial_number.in_(wanted))
            .order_by(LeaseRow.id)
        )
        with self._read() as conn:
            return {int(n): str(w) for n, w in conn.execute(q) if n is not None}

    @db_retry()
    def pending_evaluations(self) -> list[StudyRow]:
        """Completed studies whose final evaluation is pending (an indexed lookup; usually
        none), instead of every completed study."""
        q = sa.select(StudyRow).where(
            StudyRow.evaluation_state == "pending",
            StudyRow.status == StudyStatus.COMPLETED.value,
        )
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            return list(s.scalars(q.order_by(StudyRow.id)))


def _directions(conn: Connection, optuna_study_id: int) -> list[StudyDirection]:
    d = STUDY_DIRECTIONS.c
    q = sa.select(d.direction).where(d.study_id == optuna_study_id).order_by(d.objective)
    return [v if isinstance(v, StudyDirection) else StudyDirection[v] for v in conn.scalars(q)]


def _state_counts(conn: Connection, optuna_study_id: int) -> dict[str, int]:
    t = TRIALS.c
    q = sa.select(t.state, sa.func.count()).where(t.study_id == optuna_study_id).group_by(t.state)
    counts = {s.name.lower(): 0 for s in TrialState}
    for st, n in conn.execute(q):
        counts[state_of(st).name.lower()] = int(n)
    return counts


def _build_prefix(
    conn: Connection,
    optuna_study_id: int,
    directions: Sequence[StudyDirection],
    sum_keys: Sequence[str],
) -> Prefix:
    """Aggregates (``SUM``, ``ORDER BY value LIMIT 1`` or the values for a Pareto front) of
    the study's trials before its first unfinished one (once per study and process)."""
    t = TRIALS.c
    mine = t.study_id == optuna_study_id
    unfinished = [TrialState.RUNNING, TrialState.WAITING]
    upto = conn.scalar(sa.select(sa.func.min(t.trial_id)).where(mine, t.state.in_(unfinished)))
    if upto is None:
        last = conn.scalar(sa.select(sa.func.max(t.trial_id)).where(mine))
        upto = 0 if last is None else int(last) + 1
    below = [mine, t.trial_id < upto]
    n = conn.scalar(sa.select(sa.func.count()).select_from(TRIALS).where(*below))
    return Prefix(
        upto=int(upto),
        n=int(n or 0),
        sums=_attr_sums(conn, below, sum_keys),
        best=keep_best(_best_points(conn, below, directions), len(directions)),
        directions=tuple(directions),
    )


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


def _tail(
    conn: Connection, optuna_study_id: int, prefix: Prefix, sum_keys: Sequence[str]
) -> list[TailTrial]:
    """The study's trials from ``prefix.upto`` on, with their sums and values (few: the
    running ones and those created since the prefix was last extended)."""
    t = TRIALS.c
    rows = conn.execute(
        sa.select(t.trial_id, t.number, t.state).where(
            t.study_id == optuna_study_id, t.trial_id >= prefix.upto
        )
    ).all()
    if not rows:
        return []
    ids = [int(r[0]) for r in rows]
    sums: dict[int, dict[str, float]] = {i: {} for i in ids}
    if sum_keys:
        a = TRIAL_USER_ATTRS.c
        for tid, key, raw in conn.execute(
            sa.select(a.trial_id, a.key, a.value_json).where(
                a.trial_id.in_(ids), a.key.in_(list(sum_keys))
            )
        ):
            sums[tid][key] = _number(raw)
    complete = [int(r[0]) for r in rows if state_of(r[2]) == TrialState.COMPLETE]
    pts: dict[int, Point] = {}
    if complete:
        v = TRIAL_VALUES.c
        q = (
            sa.select(t.trial_id, t.number, v.objective, v.value, v.value_type)
            .select_from(TRIALS.join(TRIAL_VALUES, v.trial_id == t.trial_id))
            .where(t.trial_id.in_(complete))
        )
        pts = {p.trial_id: p for p in _points(conn.execute(q), prefix.directions)}
    return [
        TailTrial(int(tid), int(number), state_of(state), sums[int(tid)], pts.get(int(tid)))
        for tid, number, state in rows
    ]


def _number(raw: str | None) -> float:
    """A JSON number as stored by Optuna (anything else counts 0, as SQL's CAST would)."""
    try:
        v = json.loads(raw) if raw is not None else None
    except ValueError:
        return 0.0
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def _frozen_trials(conn: Connection, trial_ids: Sequence[int]) -> list[FrozenTrial]:
    """Whole trials for ``trial_ids`` (five indexed ``IN`` queries), ordered by number."""
    if not trial_ids:
        return []
    ids = list(trial_ids)
    t = TRIALS.c
    rows = conn.execute(
        sa.select(
            t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete
        ).where(t.trial_id.in_(ids))
    ).all()
    values: dict[int, dict[int, float]] = {i: {} for i in ids}
    v = TRIAL_VALUES.c
    for tid, objective, value, vtype in conn.execute(
        sa.select(v.trial_id, v.objective, v.value, v.value_type).where(v.trial_id.in_(ids))
    ):
        values[tid][objective] = stored_value(value, vtype)
    params: dict[int, dict[str, Any]] = {i: {} for i in ids}
    dists: dict[int, dict[str, Any]] = {i: {} for i in ids}
    p = TRIAL_PARAMS.c
    for tid, name, value, dist_json in conn.execute(
        sa.select(p.trial_id, p.param_name, p.param_value, p.distribution_json)
        .where(p.trial_id.in_(ids))
        .order_by(p.param_id)
    ):
        dist = _distribution(dist_json)
        dists[tid][name] = dist
        params[tid][name] = dist.to_external_repr(value)
    inter: dict[int, dict[int, float]] = {i: {} for i in ids}
    iv = TRIAL_INTERMEDIATE_VALUES.c
    for tid, step, value, vtype in conn.execute(
        sa.select(iv.trial_id, iv.step, iv.intermediate_value, iv.intermediate_value_type).where(
            iv.trial_id.in_(ids)
        )
    ):
        inter[tid][step] = stored_value(value, vtype)
    user = _attrs(conn, TRIAL_USER_ATTRS, ids)
    system = _attrs(conn, TRIAL_SYSTEM_ATTRS, ids)
    out = [
        FrozenTrial(
            number=int(number),
            state=state_of(state),
            value=None,
            values=[values[tid][k] for k in sorted(values[tid])] if values[tid] else None,
            datetime_start=local_time(start),
            datetime_complete=local_time(complete),
            params=params[tid],
            distributions=dists[tid],
            user_attrs=user[tid],
            system_attrs=system[tid],
            intermediate_values=inter[tid],
            trial_id=int(tid),
        )
        for tid, number, state, start, complete in rows
    ]
    return sorted(out, key=lambda ft: ft.number)


@functools.lru_cache(maxsize=4096)
def _distribution(dist_json: str) -> BaseDistribution:
    """Distributions are immutable and repeat across trials: parse each JSON text once."""
    return json_to_distribution(dist_json)


def _attrs(conn: Connection, table: sa.TableClause, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {i: {} for i in ids}
    c = table.c
    for tid, key, raw in conn.execute(
        sa.select(c.trial_id, c.key, c.value_json).where(c.trial_id.in_(ids))
    ):
        out[tid][key] = json.loads(raw)
    return out
