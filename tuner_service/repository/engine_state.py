"""Engine state that must survive a worker (e.g. a Keras Tuner oracle), under the study's lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from ..db import db_retry
from ..models import EngineStateRow, LeaseRow, StudyRow
from ..states import LeaseState
from .base import RepositoryBase, utcnow

R = TypeVar("R")

#: ``fn(state, active_lease_ids) -> (new_state, result)`` of :meth:`Repository.update_engine_state`.
EngineStateFn = Callable[[dict[str, Any] | None, frozenset[int]], tuple[dict[str, Any], R]]



class EngineStateMixin(RepositoryBase):
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
