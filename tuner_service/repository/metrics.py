"""Read-only aggregates for ``/metrics`` (Optuna's trials table included)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import db_retry
from ..models import StudyRow, WorkerRow
from ..scaling_queries import TRIALS_WAITING_TO_BE_CLAIMED
from .base import RepositoryBase

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



class MetricsMixin(RepositoryBase):
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
