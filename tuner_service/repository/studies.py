"""Study rows: insert, read, and compare-and-set status changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..db import db_retry
from ..models import StudyRow
from ..states import STUDIES, StudyStatus
from .base import RepositoryBase, utcnow


class StudiesMixin(RepositoryBase):
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
        target: StudyStatus,
        expected: Sequence[StudyStatus] | None = None,
        reason: str | None = None,
    ) -> bool:
        """Compare-and-set; returns False when the study was not in an expected status.

        ``expected`` defaults to every status the table (:data:`STUDIES`) lets move to
        ``target``; a caller that read the current status passes just that one.

        Raises:
            InvalidTransitionError: an expected status may not move to ``target``.
        """
        if expected is None:
            expected = sorted(STUDIES.sources(target))
        for e in expected:
            STUDIES.check(e, target)
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
