"""What every part of the repository shares: sessions, the lease record, the study lock.

Every method of the repository runs in its own short transaction and is retried with backoff on
transient database errors (restart, network blip). Writes that could be retried after an unknown
outcome are idempotent: a claim first returns the worker's own unattached lease, state changes
are compare-and-set (``UPDATE ... WHERE state IN expected``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..db import db_retry, utc_now
from ..models import LeaseRow, StudyRow


def utcnow() -> datetime:
    """Naive UTC (what every backend stores the same way), on this host's clock: for records
    only. Liveness (heartbeats, expiry) uses the database's clock (:class:`~..db.utc_now`)."""
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



def _lease(row: LeaseRow) -> Lease:
    return Lease(
        row.id, row.study_id, row.worker_id, row.seq, row.state, row.trial_id, row.trial_number
    )



class RepositoryBase:
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
    def database_time(self) -> datetime:
        """The database server's clock (naive UTC): what liveness is judged on."""
        with self.engine.connect() as conn:
            now: datetime = conn.execute(sa.select(utc_now())).scalar_one()
            return now

    @db_retry()
    def ping(self) -> None:
        """Wait (retrying with backoff) until the database answers."""
        self.try_ping()

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
        q = (
            sa.select(StudyRow)
            .where(StudyRow.id == study_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return s.scalars(q).one_or_none()


    def _lease_counts(self, s: Session, study_id: int) -> LeaseCounts:
        """The study's leases by state: its row's counters (migration 0007), not a count of
        its lease rows."""
        q = sa.select(
            StudyRow.leases_active, StudyRow.leases_finished, StudyRow.leases_lost
        ).where(StudyRow.id == study_id)
        row = s.execute(q).one_or_none()
        return LeaseCounts(0, 0, 0) if row is None else LeaseCounts(*map(int, row))


def counts_of(study: StudyRow) -> LeaseCounts:
    """The leases of a loaded study row by state (its counters)."""
    return LeaseCounts(study.leases_active, study.leases_finished, study.leases_lost)
