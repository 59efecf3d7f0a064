"""All SQL of the control plane, one named method per query or unit of work.

Every method runs in its own short transaction and is retried with backoff on transient
database errors (restart, network blip). Writes that could be retried after an unknown outcome
are idempotent: a claim first returns the worker's own unattached lease, state changes are
compare-and-set (``UPDATE ... WHERE state = expected``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .db import db_retry
from .errors import LeaseLostError
from .models import ArtifactRow, EngineStateRow, LeaseRow, StudyRow, WorkerRow
from .scaling_queries import TRIALS_WAITING_TO_BE_CLAIMED
from .states import BUDGET_STATES, LeaseState, StudyStatus, WorkerStatus

R = TypeVar("R")

#: ``fn(state, active_lease_ids) -> (new_state, result)`` of :meth:`Repository.update_engine_state`.
EngineStateFn = Callable[[dict[str, Any] | None, frozenset[int]], tuple[dict[str, Any], R]]


def utcnow() -> datetime:
    """Naive UTC (what every backend stores the same way)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Lease:
    id: int
    study_id: int
    worker_id: str
    seq: int
    state: str
    trial_id: int | None
    trial_number: int | None


@dataclass(frozen=True)
class LeaseCounts:
    active: int
    finished: int
    lost: int

    @property
    def used(self) -> int:
        return self.active + self.finished


#: Optuna's own trials table (``optuna.storages.RDBStorage``), for read-only aggregates; the
#: state column holds ``TrialState`` names.
_OPTUNA_TRIALS = sa.table(
    "trials",
    sa.column("trial_id", sa.Integer),
    sa.column("study_id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("datetime_start", sa.DateTime),
    sa.column("datetime_complete", sa.DateTime),
)
_FINISHED_TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass(frozen=True)
class MetricsSnapshot:
    studies_by_status: dict[str, int]
    trials_by_state: dict[str, int]  # Optuna TrialState names
    trial_durations: list[float]  # seconds, finished trials
    workers_by_status: dict[str, int]
    claimable_budget: int


def _lease(row: LeaseRow) -> Lease:
    return Lease(
        row.id, row.study_id, row.worker_id, row.seq, row.state, row.trial_id, row.trial_number
    )


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def try_ping(self) -> None:
        """One round trip, no retry. Raises a transient database error when it is away."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @db_retry()
    def ping(self) -> None:
        """Wait (retrying with backoff) until the database answers."""
        self.try_ping()

    # --- studies --------------------------------------------------------------------------
    @db_retry()
    def insert_study(
        self,
        *,
        name: str,
        optuna_study_id: int,
        spec: dict[str, Any],
        engine_kind: str,
        n_trials: int,
        max_parallel: int,
        timeout_s: float | None,
    ) -> StudyRow:
        now = utcnow()
        row = StudyRow(
            name=name,
            optuna_study_id=optuna_study_id,
            spec=spec,
            engine_kind=engine_kind,
            status=StudyStatus.QUEUED.value,
            n_trials=n_trials,
            max_parallel=max_parallel,
            timeout_s=timeout_s,
            lease_seq=0,
            created_at=now,
            updated_at=now,
        )
        with self.session() as s:
            s.add(row)
        return row

    @db_retry()
    def get_study(self, study_id: int) -> StudyRow | None:
        with self.session() as s:
            return s.get(StudyRow, study_id)

    @db_retry()
    def get_study_by_name(self, name: str) -> StudyRow | None:
        with self.session() as s:
            return s.scalars(sa.select(StudyRow).where(StudyRow.name == name)).one_or_none()

    @db_retry()
    def list_studies(
        self, *, status: str | None, limit: int, offset: int
    ) -> tuple[list[StudyRow], int]:
        with self.session() as s:
            q = sa.select(StudyRow)
            cq = sa.select(sa.func.count()).select_from(StudyRow)
            if status is not None:
                q = q.where(StudyRow.status == status)
                cq = cq.where(StudyRow.status == status)
            rows = list(s.scalars(q.order_by(StudyRow.id).limit(limit).offset(offset)))
            count = int(s.scalar(cq) or 0)
            return rows, count

    @db_retry()
    def studies_with_status(self, statuses: Sequence[StudyStatus]) -> list[StudyRow]:
        with self.session() as s:
            q = sa.select(StudyRow).where(StudyRow.status.in_([x.value for x in statuses]))
            return list(s.scalars(q.order_by(StudyRow.id)))

    @db_retry()
    def count_studies_by_status(self) -> dict[str, int]:
        with self.session() as s:
            q = sa.select(StudyRow.status, sa.func.count()).group_by(StudyRow.status)
            return {status: int(n) for status, n in s.execute(q)}

    @db_retry()
    def set_study_status(
        self,
        study_id: int,
        *,
        expected: Sequence[StudyStatus],
        target: StudyStatus,
        reason: str | None = None,
    ) -> bool:
        """Compare-and-set; returns False when the study was not in an expected status."""
        now = utcnow()
        values: dict[str, Any] = {"status": target.value, "updated_at": now}
        if reason is not None:
            values["status_reason"] = reason
        if target.is_final:
            values["finished_at"] = now
        if target == StudyStatus.RUNNING:
            values["started_at"] = sa.func.coalesce(StudyRow.started_at, now)
        with self.session() as s:
            res = s.execute(
                sa.update(StudyRow)
                .where(StudyRow.id == study_id)
                .where(StudyRow.status.in_([e.value for e in expected]))
                .values(**values)
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def set_evaluation(
        self,
        study_id: int,
        *,
        expected: Sequence[str | None],
        state: str,
        evaluation: dict[str, Any] | None = None,
    ) -> bool:
        """Compare-and-set of the final evaluation's state (one worker evaluates)."""
        conds = [
            StudyRow.evaluation_state.is_(None) if e is None else StudyRow.evaluation_state == e
            for e in expected
        ]
        values: dict[str, Any] = {"evaluation_state": state, "updated_at": utcnow()}
        if evaluation is not None:
            values["evaluation"] = evaluation
        with self.session() as s:
            res = s.execute(
                sa.update(StudyRow)
                .where(StudyRow.id == study_id)
                .where(sa.or_(*conds))
                .values(**values)
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    # --- leases ---------------------------------------------------------------------------
    def _lock_study(self, s: Session, study_id: int) -> StudyRow | None:
        """Take the study row's write lock for the claim; None when another worker holds it."""
        if self.dialect == "sqlite":
            # The first statement writes, so SQLite takes its write lock (waiting on
            # busy_timeout) before anything is read: the transaction is serialised.
            s.execute(
                sa.update(StudyRow)
                .where(StudyRow.id == study_id)
                .values(lease_seq=StudyRow.lease_seq)
            )
            return s.get(StudyRow, study_id, populate_existing=True)
        q = sa.select(StudyRow).where(StudyRow.id == study_id).with_for_update(skip_locked=True)
        return s.scalars(q).one_or_none()

    @db_retry()
    def own_unattached_lease(self, worker_id: str) -> Lease | None:
        with self.session() as s:
            row = s.scalars(
                sa.select(LeaseRow).where(
                    LeaseRow.worker_id == worker_id,
                    LeaseRow.state == LeaseState.ACTIVE.value,
                    LeaseRow.trial_id.is_(None),
                )
            ).first()
            return _lease(row) if row else None

    @db_retry()
    def try_claim(self, study_id: int, worker_id: str) -> tuple[Lease, StudyRow] | None:
        """Hand one trial of ``study_id`` to ``worker_id`` if its budget and parallelism allow.

        Losing a race (the row is locked by another claimer) returns None: that is normal.
        """
        with self.session() as s:
            study = self._lock_study(s, study_id)
            if study is None or not StudyStatus(study.status).hands_out_trials:
                return None
            now = utcnow()  # under the lock: after every lease end this claim can see
            if (
                study.timeout_s is not None
                and study.started_at is not None
                and (now - study.started_at > timedelta(seconds=study.timeout_s))
            ):
                return None
            counts = self._lease_counts(s, study_id)
            if counts.used >= study.n_trials or counts.active >= study.max_parallel:
                return None
            study.lease_seq += 1
            lease = LeaseRow(
                study_id=study_id,
                worker_id=worker_id,
                state=LeaseState.ACTIVE.value,
                seq=study.lease_seq,
                created_at=now,
                updated_at=now,
                active_at_claim=counts.active + 1,
            )
            s.add(lease)
            if study.status == StudyStatus.QUEUED.value:
                study.status = StudyStatus.RUNNING.value
                study.started_at = study.started_at or now
            study.updated_at = now
            s.flush()
            return _lease(lease), study

    @db_retry()
    def complete_if_done(self, study_id: int) -> str | None:
        """In one locked transaction: mark a queued/running study completed when its budget is
        spent (or its timeout passed) and no lease is active; its final evaluation becomes
        pending. Returns the reason when it completed the study, else None."""
        now = utcnow()
        with self.session() as s:
            study = self._lock_study(s, study_id)
            if study is None or study.status not in (
                StudyStatus.QUEUED.value, StudyStatus.RUNNING.value
            ):
                return None
            counts = self._lease_counts(s, study_id)
            if counts.active:
                return None
            timed_out = (
                study.timeout_s is not None
                and study.started_at is not None
                and now - study.started_at > timedelta(seconds=study.timeout_s)
            )
            if counts.finished < study.n_trials and not timed_out:
                return None
            reason = "budget spent" if counts.finished >= study.n_trials else "timeout reached"
            study.status = StudyStatus.COMPLETED.value
            study.status_reason = reason
            study.finished_at = now
            study.updated_at = now
            if study.evaluation_state is None:
                study.evaluation_state = "pending"
            return reason

    def _lease_counts(self, s: Session, study_id: int) -> LeaseCounts:
        q = (
            sa.select(LeaseRow.state, sa.func.count())
            .where(LeaseRow.study_id == study_id)
            .group_by(LeaseRow.state)
        )
        by = {state: int(n) for state, n in s.execute(q)}
        return LeaseCounts(
            active=by.get(LeaseState.ACTIVE.value, 0),
            finished=by.get(LeaseState.FINISHED.value, 0),
            lost=by.get(LeaseState.LOST.value, 0),
        )

    @db_retry()
    def lease_counts(self, study_id: int) -> LeaseCounts:
        with self.session() as s:
            return self._lease_counts(s, study_id)

    @db_retry()
    def attach_trial(self, lease_id: int, *, trial_id: int, trial_number: int) -> None:
        """Record which trial an active lease runs (``updated_at`` keeps the lease's last
        state change).

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

    @db_retry()
    def end_lease(self, lease_id: int, target: LeaseState, *, reason: str | None = None) -> bool:
        """Compare-and-set from ACTIVE; False when someone (the reaper) ended it first."""
        with self.session() as s:
            res = s.execute(
                sa.update(LeaseRow)
                .where(LeaseRow.id == lease_id, LeaseRow.state == LeaseState.ACTIVE.value)
                .values(state=target.value, reason=reason, updated_at=utcnow())
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def count_lost_lease_as_finished(self, study_id: int, trial_id: int) -> None:
        """A trial that failed for good uses its piece of the budget: its lost lease becomes a
        finished one, so that the study ends with exactly n_trials finished trials. Its
        ``updated_at`` stays the time the lease ended (when it was lost)."""
        with self.session() as s:
            s.execute(
                sa.update(LeaseRow)
                .where(
                    LeaseRow.study_id == study_id,
                    LeaseRow.trial_id == trial_id,
                    LeaseRow.state == LeaseState.LOST.value,
                )
                .values(state=LeaseState.FINISHED.value)
            )

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

    # --- metrics (read-only aggregates, Optuna's trials table included) --------------------
    @db_retry(max_wait_s=5.0)  # a scrape has a deadline: fail fast, report the outage
    def metrics_snapshot(self) -> MetricsSnapshot:
        """Everything ``/metrics`` reports, read in one transaction."""
        with self.session() as s:
            studies = {
                status: int(n)
                for status, n in s.execute(
                    sa.select(StudyRow.status, sa.func.count()).group_by(StudyRow.status)
                )
            }
            workers = {
                status: int(n)
                for status, n in s.execute(
                    sa.select(WorkerRow.status, sa.func.count()).group_by(WorkerRow.status)
                )
            }
            return MetricsSnapshot(
                studies_by_status=studies,
                trials_by_state=self._trials_by_state(s),
                trial_durations=self._finished_trial_durations(s),
                workers_by_status=workers,
                claimable_budget=self._claimable_budget(s),
            )

    def _claimable_budget(self, s: Session) -> int:
        """Trials still to be handed out (see :data:`TRIALS_WAITING_TO_BE_CLAIMED`, the query
        that the Kubernetes autoscaler runs too)."""
        return int(s.execute(sa.text(TRIALS_WAITING_TO_BE_CLAIMED)).scalar_one() or 0)

    def _trials_by_state(self, s: Session) -> dict[str, int]:
        """Trials of the service's studies by Optuna state name (``COMPLETE``, ...)."""
        state = sa.cast(_OPTUNA_TRIALS.c.state, sa.String(16))
        q = (
            sa.select(state, sa.func.count())
            .select_from(_OPTUNA_TRIALS)
            .join(StudyRow, StudyRow.optuna_study_id == _OPTUNA_TRIALS.c.study_id)
            .group_by(state)
        )
        return {str(st): int(n) for st, n in s.execute(q)}

    def _finished_trial_durations(self, s: Session) -> list[float]:
        """Seconds from start to end of every finished trial of the service's studies."""
        t = _OPTUNA_TRIALS.c
        q = (
            sa.select(t.datetime_start, t.datetime_complete)
            .select_from(_OPTUNA_TRIALS)
            .join(StudyRow, StudyRow.optuna_study_id == t.study_id)
            .where(
                sa.cast(t.state, sa.String(16)).in_(_FINISHED_TRIAL_STATES),
                t.datetime_start.is_not(None),
                t.datetime_complete.is_not(None),
            )
        )
        return [
            max(0.0, (end - start).total_seconds())
            for start, end in s.execute(q)
            if isinstance(start, datetime) and isinstance(end, datetime)
        ]

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
            res = s.execute(
                sa.delete(LeaseRow).where(
                    LeaseRow.id == lease_id,
                    LeaseRow.state == LeaseState.ACTIVE.value,
                    LeaseRow.trial_id.is_(None),
                )
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def close_budget(self, study_id: int) -> int:
        """The engine's search is over before the budget is spent (e.g. a Keras Tuner oracle
        said STOPPED): lower ``n_trials`` to the trials handed out, so that no more are handed
        out and the study completes when they finish. Returns the new ``n_trials``."""
        with self.session() as s:
            study = s.scalars(
                sa.select(StudyRow).where(StudyRow.id == study_id).with_for_update()
            ).one()
            used = self._lease_counts(s, study_id).used
            if used < study.n_trials:
                study.n_trials = used
                study.updated_at = utcnow()
            return int(study.n_trials)

    # --- engine state ---------------------------------------------------------------------
    @db_retry()
    def update_engine_state(self, study_id: int, kind: str, fn: EngineStateFn[R]) -> R:
        """Read-modify-write of a study's engine state under the study's lock.

        ``fn`` gets the stored state (None at first) and the ids of the study's active leases,
        and returns the new state and a result. Two workers never run ``fn`` on the same study
        at once (PostgreSQL: ``SELECT ... FOR UPDATE`` of the study row; SQLite: every
        transaction is ``BEGIN IMMEDIATE``). ``fn`` may run again after a transient error, so
        it must depend only on its arguments.
        """
        with self.session() as s:
            if self.dialect != "sqlite":
                s.execute(sa.select(StudyRow.id).where(StudyRow.id == study_id).with_for_update())
            row = s.get(EngineStateRow, study_id, populate_existing=True)
            active = frozenset(
                s.scalars(
                    sa.select(LeaseRow.id).where(
                        LeaseRow.study_id == study_id, LeaseRow.state == LeaseState.ACTIVE.value
                    )
                )
            )
            new_state, result = fn(None if row is None else dict(row.state), active)
            now = utcnow()
            if row is None:
                s.add(
                    EngineStateRow(
                        study_id=study_id, kind=kind, state=new_state, version=1, updated_at=now
                    )
                )
            else:
                row.state = new_state
                row.version += 1
                row.updated_at = now
            return result

    @db_retry()
    def get_engine_state(self, study_id: int) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(EngineStateRow, study_id)
            return None if row is None else dict(row.state)

    # --- workers --------------------------------------------------------------------------
    @db_retry()
    def register_worker(
        self, *, worker_id: str, host: str, pid: int, device: str, info: dict[str, Any]
    ) -> None:
        now = utcnow()
        with self.session() as s:
            row = s.get(WorkerRow, worker_id)
            if row is None:
                s.add(
                    WorkerRow(
                        id=worker_id,
                        host=host,
                        pid=pid,
                        device=device,
                        status=WorkerStatus.ALIVE.value,
                        started_at=now,
                        last_heartbeat=now,
                        info=info,
                    )
                )
            else:  # idempotent on retry
                row.status = WorkerStatus.ALIVE.value
                row.last_heartbeat = now

    @db_retry()
    def heartbeat(self, worker_id: str) -> bool:
        """Returns False when the worker was declared dead (its leases were taken back)."""
        with self.session() as s:
            res = s.execute(
                sa.update(WorkerRow)
                .where(WorkerRow.id == worker_id, WorkerRow.status == WorkerStatus.ALIVE.value)
                .values(last_heartbeat=utcnow())
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def set_worker_status(self, worker_id: str, status: WorkerStatus) -> None:
        with self.session() as s:
            values: dict[str, Any] = {"status": status.value}
            if status != WorkerStatus.ALIVE:
                values["stopped_at"] = utcnow()
            s.execute(sa.update(WorkerRow).where(WorkerRow.id == worker_id).values(**values))

    @db_retry()
    def mark_silent_workers_dead(self, cutoff: datetime) -> list[str]:
        with self.session() as s:
            ids = list(
                s.scalars(
                    sa.select(WorkerRow.id).where(
                        WorkerRow.status == WorkerStatus.ALIVE.value,
                        WorkerRow.last_heartbeat < cutoff,
                    )
                )
            )
            if ids:
                s.execute(
                    sa.update(WorkerRow)
                    .where(WorkerRow.id.in_(ids), WorkerRow.status == WorkerStatus.ALIVE.value)
                    .values(status=WorkerStatus.DEAD.value, stopped_at=utcnow())
                )
            return ids

    @db_retry()
    def list_workers(
        self, *, include_stopped: bool = False
    ) -> list[tuple[WorkerRow, Lease | None]]:
        with self.session() as s:
            q = sa.select(WorkerRow).order_by(WorkerRow.started_at)
            if not include_stopped:
                q = q.where(WorkerRow.status == WorkerStatus.ALIVE.value)
            workers = list(s.scalars(q))
            leases = {
                r.worker_id: _lease(r)
                for r in s.scalars(
                    sa.select(LeaseRow).where(LeaseRow.state == LeaseState.ACTIVE.value)
                )
            }
            return [(w, leases.get(w.id)) for w in workers]

    # --- artifacts ------------------------------------------------------------------------
    @db_retry()
    def put_artifact(self, artifact_id: str, data: bytes) -> None:
        with self.session() as s:
            s.merge(ArtifactRow(id=artifact_id, data=data, created_at=utcnow()))

    @db_retry()
    def get_artifact(self, artifact_id: str) -> bytes | None:
        with self.session() as s:
            row = s.get(ArtifactRow, artifact_id)
            return None if row is None else bytes(row.data)

    @db_retry()
    def delete_artifact(self, artifact_id: str) -> bool:
        with self.session() as s:
            res = s.execute(sa.delete(ArtifactRow).where(ArtifactRow.id == artifact_id))
            return bool(res.rowcount)  # type: ignore[attr-defined]


__all__ = ["BUDGET_STATES", "Lease", "LeaseCounts", "MetricsSnapshot", "Repository", "utcnow"]
