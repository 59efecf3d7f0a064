"""Reads of a study's trials whose cost follows the page, not the study.

Every query of Optuna's tables that the control plane runs on a read path lives here: state
counts, totals of the trials' recorded seconds, the best trial(s) and one page of trials, each
cut or aggregated by the database (``GROUP BY``, ``ORDER BY number LIMIT/OFFSET``, an
``ORDER BY value LIMIT 1``), with the page's parameters, values, intermediate values and
attributes fetched for that page's trials only. They use the indexes of Alembic revision 0004.

Optuna's schema (``optuna.storages.RDBStorage``, schema version ``v3.2.0.a``) is declared
below with ``sa.table()``: only the columns read, typed as Optuna types them. Rows become
``FrozenTrial`` exactly as ``RDBStorage`` builds them (values from their stored form,
parameters in their external form, datetimes in local time), so
:func:`tuner_service.optuna_bridge.trial_to_dict` shows them unchanged.

On SQLite these run on an engine whose transactions are plain (deferred) ``BEGIN``: readers
take no write lock and, under WAL, never wait for a worker's write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from optuna.distributions import json_to_distribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .db import db_retry
from .models import LeaseRow, StudyRow
from .states import StudyStatus

_STATE = sa.Enum(TrialState, name="trialstate", create_constraint=False)

TRIALS = sa.table(
    "trials",
    sa.column("trial_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("study_id", sa.Integer),
    sa.column("state", _STATE),
    sa.column("datetime_start", sa.DateTime),
    sa.column("datetime_complete", sa.DateTime),
)
STUDY_DIRECTIONS = sa.table(
    "study_directions",
    sa.column("study_id", sa.Integer),
    sa.column("objective", sa.Integer),
    sa.column("direction", sa.Enum(StudyDirection, name="studydirection", create_constraint=False)),
)
TRIAL_VALUES = sa.table(
    "trial_values",
    sa.column("trial_id", sa.Integer),
    sa.column("objective", sa.Integer),
    sa.column("value", sa.Float),
    sa.column(
        "value_type",
        sa.Enum("FINITE", "INF_POS", "INF_NEG", name="trialvaluetype", create_constraint=False),
    ),
)
TRIAL_PARAMS = sa.table(
    "trial_params",
    sa.column("param_id", sa.Integer),
    sa.column("trial_id", sa.Integer),
    sa.column("param_name", sa.String),
    sa.column("param_value", sa.Float),
    sa.column("distribution_json", sa.Text),
)
TRIAL_INTERMEDIATE_VALUES = sa.table(
    "trial_intermediate_values",
    sa.column("trial_id", sa.Integer),
    sa.column("step", sa.Integer),
    sa.column("intermediate_value", sa.Float),
    sa.column(
        "intermediate_value_type",
        sa.Enum(
            "FINITE",
            "INF_POS",
            "INF_NEG",
            "NAN",
            name="trialintermediatevaluetype",
            create_constraint=False,
        ),
    ),
)
TRIAL_USER_ATTRS = sa.table(
    "trial_user_attributes",
    sa.column("trial_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)
TRIAL_SYSTEM_ATTRS = sa.table(
    "trial_system_attributes",
    sa.column("trial_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)

_STORED = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}


@dataclass(frozen=True)
class StudyOverview:
    """What a study's summary shows, read in one snapshot."""

    directions: list[StudyDirection]
    counts: dict[str, int]  # every TrialState, lower-case names
    sums: dict[str, float]  # user attribute key -> sum over the study's trials
    best: list[FrozenTrial]  # see TrialReads.best


class TrialReads:
    """Read-only queries of Optuna's trial tables (and our lease rows) for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One transaction: every query of a call sees one snapshot of the database."""
        with self.engine.begin() as conn:
            yield conn

    # --- aggregates -----------------------------------------------------------------------
    @db_retry()
    def overview(self, optuna_study_id: int, sum_keys: Sequence[str]) -> StudyOverview:
        """Directions, trials by state (``GROUP BY state``), the sums of the numeric user
        attributes ``sum_keys`` (``SUM`` over ``trial_user_attributes``) and the best
        trial(s), in one snapshot."""
        with self._read() as conn:
            directions = _directions(conn, optuna_study_id)
            return StudyOverview(
                directions=directions,
                counts=_state_counts(conn, optuna_study_id),
                sums=_attr_sums(conn, optuna_study_id, sum_keys),
                best=_best(conn, optuna_study_id, directions),
            )

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
            return {_state(st).name: int(n) for st, n in conn.execute(q)}

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
        """The best COMPLETE trial (one objective: ``ORDER BY value LIMIT 1``) or the Pareto
        front (several: the front is computed from the values alone, then only its trials are
        loaded); empty when no trial completed. Ties go to the lowest number."""
        with self._read() as conn:
            return _best(conn, optuna_study_id, _directions(conn, optuna_study_id))

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


def _state(value: Any) -> TrialState:
    return value if isinstance(value, TrialState) else TrialState[str(value)]


def _directions(conn: Connection, optuna_study_id: int) -> list[StudyDirection]:
    d = STUDY_DIRECTIONS.c
    q = sa.select(d.direction).where(d.study_id == optuna_study_id).order_by(d.objective)
    return [v if isinstance(v, StudyDirection) else StudyDirection[v] for v in conn.scalars(q)]


def _best(
    conn: Connection, optuna_study_id: int, directions: Sequence[StudyDirection]
) -> list[FrozenTrial]:
    if len(directions) == 1:
        ids = _best_single(conn, optuna_study_id, directions[0])
    else:
        ids = _pareto_front(conn, optuna_study_id, directions)
    return _frozen_trials(conn, ids)


def _state_counts(conn: Connection, optuna_study_id: int) -> dict[str, int]:
    t = TRIALS.c
    q = sa.select(t.state, sa.func.count()).where(t.study_id == optuna_study_id).group_by(t.state)
    counts = {s.name.lower(): 0 for s in TrialState}
    for st, n in conn.execute(q):
        counts[_state(st).name.lower()] = int(n)
    return counts


def _attr_sums(conn: Connection, optuna_study_id: int, keys: Sequence[str]) -> dict[str, float]:
    """``SUM`` of numeric user attributes per key (Optuna stores them as JSON text; the
    service writes these keys as JSON numbers)."""
    sums = dict.fromkeys(keys, 0.0)
    if not keys:
        return sums
    t, a = TRIALS.c, TRIAL_USER_ATTRS.c
    q = (
        sa.select(a.key, sa.func.sum(sa.cast(a.value_json, sa.Float)))
        .select_from(TRIALS.join(TRIAL_USER_ATTRS, a.trial_id == t.trial_id))
        .where(t.study_id == optuna_study_id, a.key.in_(list(keys)))
        .group_by(a.key)
    )
    for key, total in conn.execute(q):
        sums[key] = float(total or 0.0)
    return sums


def _best_single(conn: Connection, optuna_study_id: int, direction: StudyDirection) -> list[int]:
    t, v = TRIALS.c, TRIAL_VALUES.c
    # Optuna's own order (RDBStorage.get_best_trial): -inf < finite values < +inf.
    rank = sa.case((v.value_type == "INF_NEG", -1), (v.value_type == "INF_POS", 1), else_=0)
    maximize = direction == StudyDirection.MAXIMIZE
    q = (
        sa.select(t.trial_id)
        .select_from(TRIALS.join(TRIAL_VALUES, v.trial_id == t.trial_id))
        .where(t.study_id == optuna_study_id, t.state == TrialState.COMPLETE, v.objective == 0)
        .order_by(
            rank.desc() if maximize else rank.asc(),
            v.value.desc() if maximize else v.value.asc(),
            t.number,
        )
        .limit(1)
    )
    best = conn.scalar(q)
    return [] if best is None else [int(best)]


def _pareto_front(
    conn: Connection, optuna_study_id: int, directions: Sequence[StudyDirection]
) -> list[int]:
    """Trial ids of the non-dominated COMPLETE trials (equal trials all stay), by number."""
    t, v = TRIALS.c, TRIAL_VALUES.c
    q = (
        sa.select(t.trial_id, v.objective, v.value, v.value_type)
        .select_from(TRIALS.join(TRIAL_VALUES, v.trial_id == t.trial_id))
        .where(t.study_id == optuna_study_id, t.state == TrialState.COMPLETE)
        .order_by(t.number)
    )
    n_obj = len(directions)
    sign = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions]
    losses: dict[int, list[float]] = {}
    for trial_id, objective, value, value_type in conn.execute(q):
        vec = losses.setdefault(int(trial_id), [math.nan] * n_obj)
        if 0 <= objective < n_obj:
            vec[objective] = sign[objective] * _stored(value, value_type)
    points = [(vec, tid) for tid, vec in losses.items() if not any(map(math.isnan, vec))]
    points.sort()
    front: list[tuple[list[float], int]] = []
    for vec, tid in points:  # lexicographic order: only an earlier point can dominate
        if not any(_dominates(f, vec) for f, _ in front):
            front.append((vec, tid))
    keep = {tid for _, tid in front}
    return [tid for tid in losses if tid in keep]


def _dominates(a: list[float], b: list[float]) -> bool:
    pairs = list(zip(a, b, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def _stored(value: float | None, value_type: Any) -> float:
    kind = getattr(value_type, "name", value_type)
    return _STORED[kind] if kind in _STORED else float(value)  # type: ignore[arg-type]


def _local(dt: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and shows naive local time (as ``RDBStorage`` does)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)


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
        values[tid][objective] = _stored(value, vtype)
    params: dict[int, dict[str, Any]] = {i: {} for i in ids}
    dists: dict[int, dict[str, Any]] = {i: {} for i in ids}
    p = TRIAL_PARAMS.c
    for tid, name, value, dist_json in conn.execute(
        sa.select(p.trial_id, p.param_name, p.param_value, p.distribution_json)
        .where(p.trial_id.in_(ids))
        .order_by(p.param_id)
    ):
        dist = json_to_distribution(dist_json)
        dists[tid][name] = dist
        params[tid][name] = dist.to_external_repr(value)
    inter: dict[int, dict[int, float]] = {i: {} for i in ids}
    iv = TRIAL_INTERMEDIATE_VALUES.c
    for tid, step, value, vtype in conn.execute(
        sa.select(iv.trial_id, iv.step, iv.intermediate_value, iv.intermediate_value_type).where(
            iv.trial_id.in_(ids)
        )
    ):
        inter[tid][step] = _stored(value, vtype)
    user = _attrs(conn, TRIAL_USER_ATTRS, ids)
    system = _attrs(conn, TRIAL_SYSTEM_ATTRS, ids)
    out = [
        FrozenTrial(
            number=int(number),
            state=_state(state),
            value=None,
            values=[values[tid][k] for k in sorted(values[tid])] if values[tid] else None,
            datetime_start=_local(start),
            datetime_complete=_local(complete),
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


def _attrs(conn: Connection, table: sa.TableClause, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {i: {} for i in ids}
    c = table.c
    for tid, key, raw in conn.execute(
        sa.select(c.trial_id, c.key, c.value_json).where(c.trial_id.in_(ids))
    ):
        out[tid][key] = json.loads(raw)
    return out
