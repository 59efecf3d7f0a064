"""The final evaluation of a completed study, run under a lease like a trial: one live worker
holds it; when that worker dies or goes silent, the reaper gives it back to the queue (or fails
it after too many attempts), so the state never stays ``running`` without a live holder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..db import db_retry
from ..models import StudyRow, WorkerRow
from ..states import EVALUATIONS, EvaluationState, WorkerStatus
from .base import RepositoryBase, utcnow


class EvaluationsMixin(RepositoryBase):
    @db_retry()
    def take_evaluation(
        self, study_id: int, worker_id: str, evaluation: dict[str, Any] | None = None
    ) -> bool:
        """PENDING -> RUNNING held by ``worker_id`` (compare-and-set), optionally replacing
        the evaluation record (e.g. with what the job was asked to do); False when another
        worker took it first."""
        EVALUATIONS.check(EvaluationState.PENDING, EvaluationState.RUNNING)
        values: dict[str, Any] = {} if evaluation is None else {"evaluation": evaluation}
        with self.session() as s:
            res = s.execute(
                sa.update(StudyRow)
                .where(StudyRow.id == study_id,
                       StudyRow.evaluation_state == EvaluationState.PENDING.value)
                .values(evaluation_state=EvaluationState.RUNNING.value,
                        evaluation_worker_id=worker_id,
                        evaluation_attempts=StudyRow.evaluation_attempts + 1,
                        updated_at=utcnow(), **values)
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def end_evaluation(
        self, study_id: int, worker_id: str, target: EvaluationState,
        evaluation: dict[str, Any],
    ) -> bool:
        """RUNNING held by ``worker_id`` -> DONE or FAILED with its outcome. False when the
        evaluation was taken back meanwhile (the worker drops its result: another one redoes
        it)."""
        EVALUATIONS.check(EvaluationState.RUNNING, target)
        with self.session() as s:
            res = s.execute(
                sa.update(StudyRow)
                .where(StudyRow.id == study_id,
                       StudyRow.evaluation_state == EvaluationState.RUNNING.value,
                       StudyRow.evaluation_worker_id == worker_id)
                .values(evaluation_state=target.value, evaluation=evaluation,
                        evaluation_worker_id=None, updated_at=utcnow())
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def reopen_evaluation(self, study_id: int, evaluation: dict[str, Any]) -> bool:
        """DONE or FAILED -> PENDING with ``evaluation`` (e.g. an on-demand ensemble request)
        and a fresh attempt count; False when the evaluation is pending or running."""
        sources = [EvaluationState.DONE, EvaluationState.FAILED]
        for e in sources:
            EVALUATIONS.check(e, EvaluationState.PENDING)
        with self.session() as s:
            res = s.execute(
                sa.update(StudyRow)
                .where(StudyRow.id == study_id,
                       StudyRow.evaluation_state.in_([e.value for e in sources]))
                .values(evaluation_state=EvaluationState.PENDING.value, evaluation=evaluation,
                        evaluation_worker_id=None, evaluation_attempts=0,
                        updated_at=utcnow())
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def take_back_evaluations(
        self, cutoff: datetime, *, max_attempts: int
    ) -> list[tuple[int, EvaluationState]]:
        """Running evaluations whose holder is gone (not alive, or silent since before
        ``cutoff`` on the database's clock) go back to PENDING, or to FAILED once they were
        taken ``max_attempts`` times (an evaluation that kills its worker every time). Returns
        (study id, new state) of each."""
        holder_lost = sa.or_(
            WorkerRow.id.is_(None),
            WorkerRow.status != WorkerStatus.ALIVE.value,
            WorkerRow.last_heartbeat < cutoff,
        )
        out: list[tuple[int, EvaluationState]] = []
        with self.session() as s:
            rows = s.execute(
                sa.select(StudyRow.id, StudyRow.evaluation_worker_id,
                          StudyRow.evaluation_attempts)
                .outerjoin(WorkerRow, WorkerRow.id == StudyRow.evaluation_worker_id)
                .where(StudyRow.evaluation_state == EvaluationState.RUNNING.value, holder_lost)
            ).all()
            for study_id, holder, attempts in rows:
                gives_up = int(attempts) >= max_attempts
                target = EvaluationState.FAILED if gives_up else EvaluationState.PENDING
                EVALUATIONS.check(EvaluationState.RUNNING, target)
                values: dict[str, Any] = {"evaluation_state": target.value,
                                          "evaluation_worker_id": None, "updated_at": utcnow()}
                if gives_up:
                    values["evaluation"] = {
                        "error": f"worker lost during the evaluation ({attempts} attempts)"}
                res = s.execute(
                    sa.update(StudyRow)
                    .where(StudyRow.id == study_id,
                           StudyRow.evaluation_state == EvaluationState.RUNNING.value,
                           StudyRow.evaluation_worker_id.is_(None) if holder is None
                           else StudyRow.evaluation_worker_id == holder)
                    .values(**values)
                )
                if res.rowcount:  # type: ignore[attr-defined]
                    out.append((int(study_id), target))
        return out
