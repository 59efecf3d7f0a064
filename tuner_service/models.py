"""The service's own tables. Trials themselves live in Optuna's tables (the single record).

Schema changes go through Alembic (``tuner_service/migrations``); the version table is
``tuner_alembic_version`` so that it never collides with Optuna's own ``alembic_version``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# MySQL's plain BLOB stops at 64 KiB; models need more.
_Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
# MySQL's plain DATETIME drops fractions of a second (migration 0004).
_Time = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    __tablename__ = "tuner_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    optuna_study_id: Mapped[int] = mapped_column(Integer, unique=True, nullable=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    engine_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    n_trials: Mapped[int] = mapped_column(Integer, nullable=False)
    max_parallel: Mapped[int] = mapped_column(Integer, nullable=False)
    timeout_s: Mapped[float | None] = mapped_column(Float)  # what migration 0001 made
    # Number of leases ever handed out: seeds each trial's sampler distinctly.
    lease_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(_Time, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(_Time, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(_Time)
    finished_at: Mapped[datetime | None] = mapped_column(_Time)
    # Final evaluation of the best trial on the test split: pending | running | done | failed.
    evaluation_state: Mapped[str | None] = mapped_column(String(16), index=True)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The worker that holds the running evaluation (its lease: the reaper takes the evaluation
    # back when that worker dies or goes silent), and how many times it was taken.
    evaluation_worker_id: Mapped[str | None] = mapped_column(String(120))
    evaluation_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                     server_default="0")
    # The study's leases by state (migration 0007): changed in the transaction that changes a
    # lease's state, so the claim and the summary need not count the lease rows.
    leases_active: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                               server_default="0")
    leases_finished: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                 server_default="0")
    leases_lost: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                             server_default="0")


class WorkerRow(Base):
    __tablename__ = "tuner_workers"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    device: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    started_at: Mapped[datetime] = mapped_column(_Time, nullable=False)
    last_heartbeat: Mapped[datetime] = mapped_column(_Time, nullable=False)
    stopped_at: Mapped[datetime | None] = mapped_column(_Time)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LeaseRow(Base):
    """One hand-out of one trial to one worker. Not a trial record: Optuna holds the trial."""

    __tablename__ = "tuner_leases"
    __table_args__ = (
        Index("ix_tuner_leases_study_state", "study_id", "state"),
        Index("ix_tuner_leases_study_trial_number", "study_id", "trial_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("tuner_studies.id", ondelete="CASCADE"), nullable=False
    )
    worker_id: Mapped[str] = mapped_column(ForeignKey("tuner_workers.id"), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    trial_id: Mapped[int | None] = mapped_column(Integer)  # Optuna's trial_id
    trial_number: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(_Time, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(_Time, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    # Leases of the study active right after this one was handed out (itself included),
    # counted under the study's lock: never above max_parallel.
    active_at_claim: Mapped[int | None] = mapped_column(Integer)


class ArtifactRow(Base):
    """Blob store behind Optuna's artifact API, so models live in the database every host sees."""

    __tablename__ = "tuner_artifacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(_Blob, nullable=False)
    created_at: Mapped[datetime] = mapped_column(_Time, nullable=False)


class EngineStateRow(Base):
    """State an engine keeps across trials and must not lose with a worker (the Keras Tuner
    oracle: its ``get_state()`` and every Keras Tuner trial). Read and written only inside a
    transaction that holds the study's lock (:meth:`Repository.update_engine_state`)."""

    __tablename__ = "tuner_engine_states"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("tuner_studies.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(_Time, nullable=False)
