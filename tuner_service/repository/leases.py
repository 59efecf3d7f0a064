"""Leases: the claim, attaching a trial, ending a lease, completing a study, the budget."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import db_retry
from ..errors import LeaseLostError
from ..models import LeaseRow, StudyRow, WorkerRow
from ..optuna_tables import TRIAL_USER_ATTRS
from ..states import EVALUATIONS, LEASES, STUDIES, LeaseState, StudyStatus, WorkerStatus
from .base import Lease, LeaseCounts, RepositoryBase, _lease, counts_of, utcnow


class LeasesMixin(RepositoryBase):
    @db_retry()
    def claim_next(self, worker_id: str) -> tuple[tuple[Lease, StudyRow] | None, list[Completed]]:
        """In one transaction: hand ``worker_id`` one trial of the oldest study that has budget
        and room, completing on the way the studies it passes whose budget is spent.

        A worker that asks again after losing the answer (e.g. a dropped connection) gets its
        own pending lease back. Returns the hand-out (None when there is nothing to do: not an
        error) and the ``(study id, reason)`` of the studies it completed.
        """
        completed: list[Completed] = []
        with self.session() as s:
            own = s.scalars(
                sa.select(LeaseRow).where(
                    LeaseRow.worker_id == worker_id,
                    LeaseRow.state == LeaseState.ACTIVE.value,
                    LeaseRow.trial_id.is_(None),
                )
            ).first()
            if own is not None:
                study = s.get(StudyRow, own.study_id)
                if study is not None:
                    return (_lease(own), study), completed
            open_ = [x.value for x in (StudyStatus.QUEUED, StudyStatus.RUNNING)]
            ids = s.scalars(
                sa.select(StudyRow.id).where(StudyRow.status.in_(open_)).order_by(StudyRow.id)
            ).all()
            now = utcnow()
            for study_id in ids:
                study = self._lock_study(s, study_id)
                if study is None:  # another claimer holds it
                    continue
                got = _hand_out(s, study, worker_id, now)
                if got is not None:
                    return got, completed
                reason = _complete(study, now)
                if reason is not None:
                    completed.append((study_id, reason))
            return None, completed

    @db_retry()
    def try_claim(self, study_id: int, worker_id: str) -> tuple[Lease, StudyRow] | None:
        """Hand one trial of ``study_id`` to ``worker_id`` if its budget and parallelism allow.

        Losing a race (the row is locked by another claimer) returns None: that is normal.
        """
        with self.session() as s:
            study = self._lock_study(s, study_id)
            return None if study is None else _hand_out(s, study, worker_id, utcnow())

    @db_retry()
    def complete_if_done(self, study_id: int) -> str | None:
        """In one locked transaction: mark a queued/running study completed when its budget is
        spent (or its timeout passed) and no lease is active; its final evaluation becomes
        pending. Returns the reason when it completed the study, else None."""
        with self.session() as s:
            study = self._lock_study(s, study_id)
            return None if study is None else _complete(study, utcnow())

    @db_retry()
    def lease_counts(self, study_id: int) -> LeaseCounts:
        with self.session() as s:
            return self._lease_counts(s, study_id)

    @db_retry()
    def attach_trial(
        self,
        lease_id: int,
        *,
        trial_id: int,
        trial_number: int,
        user_attr: tuple[str, Any] | None = None,
    ) -> None:
        """Record which trial an active lease runs (``updated_at`` keeps the lease's last
        state change); with ``user_attr`` (e.g. the worker's id), also set that user attribute
        of the trial in the same transaction, as Optuna's ``set_trial_user_attr`` stores it
        (a JSON text row of ``trial_user_attributes``; the trial is running, so Optuna's
        caches read it from the table): one transaction instead of two per trial.

        Raises:
            LeaseLostError: the lease is no longer active (the reaper took it back).
        """
        with self.session() as s:
            res = s.execute(
                sa.update(LeaseRow)
                .where(LeaseRow.id == lease_id, LeaseRow.state == LeaseState.ACTIVE.value)
                .values(trial_id=trial_id, trial_number=trial_number)
            )
            if not res.rowcount:  # type: ignore[attr-defined]
                raise LeaseLostError(f"lease {lease_id} was taken back before its trial started")
            if user_attr is not None:
                key, value = user_attr
                a = TRIAL_USER_ATTRS.c
                mine = sa.and_(a.trial_id == trial_id, a.key == key)
                s.execute(sa.delete(TRIAL_USER_ATTRS).where(mine))  # a retried attach
                s.execute(
                    sa.insert(TRIAL_USER_ATTRS).values(
                        trial_id=trial_id, key=key, value_json=json.dumps(value)
                    )
                )

    @db_retry()
    def end_lease(self, lease_id: int, target: LeaseState, *, reason: str | None = None) -> bool:
        """Compare-and-set from ACTIVE; False when someone (the reaper) ended it first.

        Raises:
            InvalidTransitionError: an active lease cannot become ``target``.
        """
        with self.session() as s:
            return self._end_lease(s, lease_id, target, reason)

    @db_retry()
    def finish_lease(
        self, lease_id: int, study_id: int, target: LeaseState, *, reason: str | None = None
    ) -> tuple[bool, str | None]:
        """:meth:`end_lease` and :meth:`complete_if_done` in one transaction: whether this
        call ended the lease, and the reason when the study completed with it."""
        with self.session() as s:
            ended = self._end_lease(s, lease_id, target, reason)
            study = self._lock_study(s, study_id)
            return ended, None if study is None else _complete(study, utcnow())

    def _end_lease(
        self, s: Session, lease_id: int, target: LeaseState, reason: str | None
    ) -> bool:
        LEASES.check(LeaseState.ACTIVE, target)
        res = s.execute(
            sa.update(LeaseRow)
            .where(LeaseRow.id == lease_id, LeaseRow.state == LeaseState.ACTIVE.value)
            .values(state=target.value, reason=reason, updated_at=utcnow())
        )
        if not res.rowcount:  # type: ignore[attr-defined]
            return False
        # by its key, not a subquery: MySQL/MariaDB would scan (and lock) every study row
        study_id = s.scalar(sa.select(LeaseRow.study_id).where(LeaseRow.id == lease_id))
        _move_counts(s, StudyRow.id == study_id, LeaseState.ACTIVE, target)
        return True

    @db_retry()
    def count_lost_lease_as_finished(self, study_id: int, trial_id: int) -> None:
        """A trial that failed for good uses its piece of the budget: its lost lease becomes a
        finished one, so that the study ends with exactly n_trials finished trials. Its
        ``updated_at`` stays the time the lease ended (when it was lost). The move LOST ->
        FINISHED is the lease table's (:data:`LEASES`); active leases are not touched."""
        target = LeaseState.FINISHED
        expected = [e for e in LEASES.sources(target) if e is not LeaseState.ACTIVE]
        with self.session() as s:
            for source in expected:
                res = s.execute(
                    sa.update(LeaseRow)
                    .where(
                        LeaseRow.study_id == study_id,
                        LeaseRow.trial_id == trial_id,
                        LeaseRow.state == source.value,
                    )
                    .values(state=target.value)
                )
                n = int(res.rowcount)  # type: ignore[attr-defined]
                if n:
                    _move_counts(s, StudyRow.id == study_id, source, target, n)

    @db_retry()
    def get_lease(self, lease_id: int) -> Lease | None:
        with self.session() as s:
            row = s.get(LeaseRow, lease_id)
            return _lease(row) if row else None

    @db_retry()
    def active_leases(self, study_id: int | None = None) -> list[Lease]:
        with self.session() as s:
            q = sa.select(LeaseRow).where(LeaseRow.state == LeaseState.ACTIVE.value)
            if study_id is not None:
                q = q.where(LeaseRow.study_id == study_id)
            return [_lease(r) for r in s.scalars(q)]

    @db_retry()
    def stale_leases(self, cutoff: datetime) -> list[Lease]:
        """Active leases whose worker went silent before ``cutoff`` or is no longer alive."""
        with self.session() as s:
            q = (
                sa.select(LeaseRow)
                .join(WorkerRow, WorkerRow.id == LeaseRow.worker_id)
                .where(LeaseRow.state == LeaseState.ACTIVE.value)
                .where(
                    sa.or_(
                        WorkerRow.last_heartbeat < cutoff,
                        WorkerRow.status != WorkerStatus.ALIVE.value,
                    )
                )
            )
            return [_lease(r) for r in s.scalars(q)]

    @db_retry()
    def trial_workers(self, study_id: int) -> dict[int, str]:
        """trial number -> the worker that holds or held it (latest lease)."""
        with self.session() as s:
            q = (
                sa.select(LeaseRow.trial_number, LeaseRow.worker_id)
                .where(LeaseRow.study_id == study_id, LeaseRow.trial_number.is_not(None))
                .order_by(LeaseRow.id)
            )
            return {int(n): w for n, w in s.execute(q) if n is not None}

    @db_retry()
    def leases_by_state(self) -> dict[str, int]:
        with self.session() as s:
            q = sa.select(LeaseRow.state, sa.func.count()).group_by(LeaseRow.state)
            return {state: int(n) for state, n in s.execute(q)}

    @db_retry()
    def drop_unattached_lease(self, lease_id: int) -> bool:
        """Delete an active lease that never got a trial (the engine had nothing to run): it
        uses no budget. False when it is gone, ended or attached."""
        with self.session() as s:
            study_id = s.scalar(sa.select(LeaseRow.study_id).where(LeaseRow.id == lease_id))
            res = s.execute(
                sa.delete(LeaseRow).where(
                    LeaseRow.id == lease_id,
                    LeaseRow.state == LeaseState.ACTIVE.value,
                    LeaseRow.trial_id.is_(None),
                )
            )
            if not res.rowcount:  # type: ignore[attr-defined]
                return False
            _move_counts(s, StudyRow.id == study_id, LeaseState.ACTIVE, None)
            return True

    @db_retry()
    def close_budget(self, study_id: int, *, reason: str | None = None) -> int:
        """The engine's search is over before the budget is spent (e.g. a Keras Tuner oracle
        said STOPPED, or the device-hour budget is used up): lower ``n_trials`` to the trials
        handed out, so that no more are handed out and the study completes when they finish
        (with ``reason`` when given). Returns the new ``n_trials``."""
        with self.session() as s:
            study = s.scalars(
                sa.select(StudyRow).where(StudyRow.id == study_id).with_for_update()
            ).one()
            used = counts_of(study).used
            if used < study.n_trials:
                study.n_trials = used
                study.updated_at = utcnow()
                if reason is not None:
                    study.status_reason = reason
            return int(study.n_trials)


Completed = tuple[int, str]  # (study id, the reason it completed)

_COUNTER = {
    LeaseState.ACTIVE: StudyRow.leases_active,
    LeaseState.FINISHED: StudyRow.leases_finished,
    LeaseState.LOST: StudyRow.leases_lost,
}


def _move_counts(
    s: Session,
    where: sa.ColumnElement[bool],
    source: LeaseState | None,
    target: LeaseState | None,
    n: int = 1,
) -> None:
    """Keep the study row's lease counters (migration 0007) true: ``n`` leases moved from
    ``source`` to ``target`` (None: created or deleted), in the caller's transaction."""
    values: dict[Any, Any] = {}
    if source is not None:
        values[_COUNTER[source]] = _COUNTER[source] - n
    if target is not None:
        values[_COUNTER[target]] = _COUNTER[target] + n
    s.execute(sa.update(StudyRow).where(where).values(values))


def _hand_out(
    s: Session, study: StudyRow, worker_id: str, now: datetime
) -> tuple[Lease, StudyRow] | None:
    """A new active lease of the locked ``study`` for ``worker_id`` if its status, timeout,
    budget and parallelism allow."""
    if not StudyStatus(study.status).hands_out_trials:
        return None
    if (
        study.timeout_s is not None
        and study.started_at is not None
        and (now - study.started_at > timedelta(seconds=study.timeout_s))
    ):
        return None
    counts = counts_of(study)
    if counts.used >= study.n_trials or counts.active >= study.max_parallel:
        return None
    study.lease_seq += 1
    study.leases_active += 1
    lease = LeaseRow(
        study_id=study.id,
        worker_id=worker_id,
        state=LeaseState.ACTIVE.value,
        seq=study.lease_seq,
        created_at=now,
        updated_at=now,
        active_at_claim=counts.active + 1,
    )
    s.add(lease)
    if study.status == StudyStatus.QUEUED.value:  # the first claim
        STUDIES.check(StudyStatus.QUEUED, StudyStatus.RUNNING)
        study.status = StudyStatus.RUNNING.value
        study.started_at = study.started_at or now
    study.updated_at = now
    s.flush()
    return _lease(lease), study


def _complete(study: StudyRow, now: datetime) -> str | None:
    """Mark the locked ``study`` completed when it hands out trials, its budget is spent (or
    its timeout passed) and no lease is active; its final evaluation becomes pending."""
    if not StudyStatus(study.status).hands_out_trials:
        return None
    counts = counts_of(study)
    if counts.active:
        return None
    timed_out = (
        study.timeout_s is not None
        and study.started_at is not None
        and now - study.started_at > timedelta(seconds=study.timeout_s)
    )
    if counts.finished < study.n_trials and not timed_out:
        return None
    # a budget closed early (close_budget) keeps the reason it was closed with
    spent = study.status_reason or "budget spent"
    reason = spent if counts.finished >= study.n_trials else "timeout reached"
    STUDIES.check(StudyStatus(study.status), StudyStatus.COMPLETED)
    study.status = StudyStatus.COMPLETED.value
    study.status_reason = reason
    study.finished_at = now
    study.updated_at = now
    if study.evaluation_state is None:
        study.evaluation_state = EVALUATIONS.initial.value
    return reason
