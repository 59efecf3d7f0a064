"""Reads of a study's trials whose cost follows the page, not the study.

Every read-path query of Optuna's tables (state counts, totals of recorded seconds, best
trial(s), one page of trials with only its trials' params, values and attributes), cut or
aggregated by the database with the indexes of Alembic 0004; rows become ``FrozenTrial`` as
``RDBStorage`` builds them. On SQLite reads open deferred ``BEGIN`` transactions (no write lock).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from . import study_folds as folds
from .db import db_retry
from .models import LeaseRow, StudyRow
from .optuna_tables import (
    STUDY_DIRECTIONS,
    TRIAL_ROWS,
    TRIAL_SYSTEM_ATTRS,
    TRIALS,
    frozen_trials,
    state_of,
    trials_from_rows,
)
from .states import StudyStatus
from .trial_aggregates import (
    Folded,
    FoldedDurations,
    Histogram,
    add_sums,
)


@dataclass(frozen=True)
class StudyOverview:
    """What a study's summary shows, read in one snapshot."""

    directions: list[StudyDirection]
    counts: dict[str, int]  # every TrialState, lower-case names
    sums: dict[str, float]  # user attribute key -> sum over the study's trials
    best: list[FrozenTrial]  # see TrialReads.best


@dataclass(frozen=True)
class FleetTrials:
    """What ``/metrics`` reports of the trials of every study of the service."""

    by_state: dict[str, int]  # Optuna TrialState names
    durations: Histogram  # finished trials, start to end


class TrialReads:
    """Read-only queries of Optuna's trial tables (and our lease rows) for one engine.

    Keeps, per study, a :class:`Folded` summary (sums, best trial(s)) of the finished trials
    it has seen; a read looks only at the trials created since and those it saw unfinished.
    Each read checks the summary against the study's trial count (``GROUP BY state`` on an
    index) and rebuilds it when they disagree (a trial committed late below the ids already
    seen, a study replaced), so it is never stale. The same for ``/metrics``' histogram.
    """

    def __init__(self, engine: Engine, *, sum_keys: Sequence[str] = ()) -> None:
        """``sum_keys``: numeric user attributes that :meth:`overview` sums."""
        self.engine = engine
        self.sum_keys = tuple(sum_keys)
        self._folded: dict[int, Folded] = {}
        self._durations: FoldedDurations | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One transaction, one snapshot on an engine from ``create_db_engine(read_only=True)``
        (SQLite's deferred ``BEGIN`` under WAL; elsewhere ``REPEATABLE READ``)."""
        with self.engine.begin() as conn:
            yield conn

    # --- aggregates -----------------------------------------------------------------------
    @db_retry()
    def overview(self, optuna_study_id: int) -> StudyOverview:
        """Directions, trials by state (``GROUP BY state`` on an index), the sums of the
        ``sum_keys`` user attributes and the best trial(s), in one snapshot; only the trials
        this process has not seen finished are read."""
        with self._read() as conn:
            directions = _directions(conn, optuna_study_id)
            total = folds.trial_total(conn, optuna_study_id)
            with self._lock:
                cached = self._folded.get(optuna_study_id)
            folded = unfinished = None
            if cached is not None and cached.directions == tuple(directions):
                tail = folds.tail(conn, optuna_study_id, cached, self.sum_keys)
                folded = cached.extend(tail)
                unfinished = [t.state for t in tail if not t.state.is_finished()]
            if folded is None or unfinished is None or folded.n + len(folded.pending) != total:
                folded, unfinished = folds.fold_study(
                    conn, optuna_study_id, directions, self.sum_keys
                )
            with self._lock:
                if len(self._folded) > 1000:  # studies read by this process: keep it bounded
                    self._folded.clear()
                self._folded[optuna_study_id] = folded
            counts = {st.name.lower(): folded.by_state.get(st, 0) for st in TrialState}
            for st in unfinished:
                counts[st.name.lower()] += 1
            running = folds.tail_sums(conn, folded.pending, self.sum_keys)
            return StudyOverview(
                directions=directions,
                counts=counts,
                sums=add_sums(folded.sums, running.values()),
                best=frozen_trials(conn, [p.trial_id for p in folded.best]),
            )

    @db_retry(max_wait_s=5.0)  # a scrape has a deadline: fail fast, report the outage
    def fleet_trials(self, bounds: Sequence[float]) -> FleetTrials:
        """Trials of the service's studies by state (``GROUP BY state``), and the histogram
        of the finished ones' durations, extended by the trials not seen finished before
        (checked against the counts like :meth:`overview`)."""
        t = TRIALS.c
        ours = TRIALS.join(StudyRow, StudyRow.optuna_study_id == t.study_id)
        with self._read() as conn:
            states = {
                state_of(st).name: int(n)
                for st, n in conn.execute(
                    sa.select(t.state, sa.func.count()).select_from(ours).group_by(t.state)
                )
            }
            with self._lock:
                cached = self._durations
            folded = None
            if cached is not None and cached.histogram.bounds == tuple(bounds):
                folded = _fold_durations(conn, cached)
            if folded is None or folded.n + len(folded.pending) != sum(states.values()):
                empty = Histogram.of(bounds, ())
                folded = _fold_durations(conn, FoldedDurations(0, frozenset(), 0, empty))
            with self._lock:
                self._durations = folded
        return FleetTrials(by_state=states, durations=folded.histogram)

    # --- pages ----------------------------------------------------------------------------
    @db_retry()
    def page(
        self,
        optuna_study_id: int,
        *,
        states: Sequence[TrialState] | None = None,
        limit: int,
        offset: int,
        study_id: int | None = None,
    ) -> tuple[list[FrozenTrial], int, dict[int, str]]:
        """Trials ordered by number, ``limit`` from ``offset`` (optionally of some states
        only), how many trials match in all, and (given our ``study_id``) trial number -> the
        worker of its latest lease for the page's trials: four queries, one snapshot."""
        t = TRIALS.c
        where = [t.study_id == optuna_study_id]
        if states is not None:
            where.append(t.state.in_(list(states)))
        page_q = TRIAL_ROWS.where(*where).order_by(t.number).limit(limit).offset(offset)
        count_q = sa.select(sa.func.count()).select_from(TRIALS).where(*where)
        with self._read() as conn:
            trials = trials_from_rows(conn, conn.execute(page_q).all())
            if states is None:  # the highest number + 1: no walk over the study's rows
                total = folds.trial_total(conn, optuna_study_id)
            else:
                total = int(conn.scalar(count_q) or 0)
            workers = {} if study_id is None else _workers_of(conn, study_id, trials)
            return trials, total, workers

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
    def pending_evaluations(self) -> list[StudyRow]:
        """Completed studies whose final evaluation is pending (an indexed lookup; usually
        none), instead of every completed study."""
        q = sa.select(StudyRow).where(
            StudyRow.evaluation_state == "pending",
            StudyRow.status == StudyStatus.COMPLETED.value,
        )
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            return list(s.scalars(q.order_by(StudyRow.id)))


def _workers_of(conn: Connection, study_id: int, trials: Sequence[FrozenTrial]) -> dict[int, str]:
    """trial number -> the worker that holds or held it (latest lease), for ``trials``."""
    if not trials:
        return {}
    q = (
        sa.select(LeaseRow.trial_number, LeaseRow.worker_id)
        .where(LeaseRow.study_id == study_id, LeaseRow.trial_number.in_([t.number for t in trials]))
        .order_by(LeaseRow.id)
    )
    return {int(n): str(w) for n, w in conn.execute(q).all() if n is not None}


def _directions(conn: Connection, optuna_study_id: int) -> list[StudyDirection]:
    d = STUDY_DIRECTIONS.c
    q = sa.select(d.direction).where(d.study_id == optuna_study_id).order_by(d.objective)
    return [v if isinstance(v, StudyDirection) else StudyDirection[v] for v in conn.scalars(q)]


def _fold_durations(conn: Connection, folded: FoldedDurations) -> FoldedDurations:
    """Extend the fleet's duration histogram by the trials from ``upto`` on and the pending
    ones (all of them, from an empty one)."""
    t = TRIALS.c
    cols = sa.select(t.trial_id, t.state, t.datetime_start, t.datetime_complete).select_from(
        TRIALS.join(StudyRow, StudyRow.optuna_study_id == t.study_id)
    )
    rows = [*conn.execute(cols.where(t.trial_id >= folded.upto))]
    if folded.pending:
        rows += conn.execute(cols.where(t.trial_id.in_(sorted(folded.pending))))
    done = [r for r in rows if state_of(r[1]).is_finished()]
    seconds = [
        (end - start).total_seconds()
        for _, _, start, end in done
        if isinstance(start, datetime) and isinstance(end, datetime)
    ]
    return FoldedDurations(
        upto=max([folded.upto, *(int(r[0]) + 1 for r in rows)]),
        pending=frozenset(int(r[0]) for r in rows if not state_of(r[1]).is_finished()),
        n=folded.n + len(done),
        histogram=folded.histogram.add(seconds),
    )
