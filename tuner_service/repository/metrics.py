"""Read-only aggregates of the service's own tables for ``/metrics`` (the trials' part is
:meth:`tuner_service.reads.TrialReads.fleet_trials`)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import db_retry
from ..models import StudyRow, WorkerRow
from ..scaling_queries import TRIALS_WAITING_TO_BE_CLAIMED
from .base import RepositoryBase


@dataclass(frozen=True)
class MetricsSnapshot:
    studies_by_status: dict[str, int]
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
                workers_by_status=workers,
                claimable_budget=self._claimable_budget(s),
            )

    def _claimable_budget(self, s: Session) -> int:
        """Trials still to be handed out (see :data:`TRIALS_WAITING_TO_BE_CLAIMED`, the query
        that the Kubernetes autoscaler runs too)."""
        return int(s.execute(sa.text(TRIALS_WAITING_TO_BE_CLAIMED)).scalar_one() or 0)
