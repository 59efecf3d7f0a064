"""Worker rows: registration, heartbeats, liveness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..db import db_retry, utc_now
from ..models import LeaseRow, WorkerRow
from ..states import WORKERS, LeaseState, WorkerStatus
from .base import Lease, RepositoryBase, _lease, utcnow


class WorkersMixin(RepositoryBase):
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
                        last_heartbeat=utc_now(),
                        info=info,
                    )
                )
            else:  # idempotent on retry; a worker declared dead registers again
                current = WorkerStatus(row.status)
                if current is not WorkerStatus.ALIVE:
                    WORKERS.check(current, WorkerStatus.ALIVE)
                row.status = WorkerStatus.ALIVE.value
                row.last_heartbeat = utc_now()

    @db_retry()
    def heartbeat(self, worker_id: str) -> bool:
        """Returns False when the worker was declared dead (its leases were taken back)."""
        with self.session() as s:
            res = s.execute(
                sa.update(WorkerRow)
                .where(WorkerRow.id == worker_id, WorkerRow.status == WorkerStatus.ALIVE.value)
                .values(last_heartbeat=utc_now())
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def set_worker_status(self, worker_id: str, status: WorkerStatus) -> bool:
        """Compare-and-set from every status the table (:data:`WORKERS`) lets move to
        ``status``; False when the worker was in none of them."""
        expected = [e.value for e in WORKERS.sources(status)]
        with self.session() as s:
            values: dict[str, Any] = {"status": status.value}
            if status != WorkerStatus.ALIVE:
                values["stopped_at"] = utcnow()
            res = s.execute(
                sa.update(WorkerRow)
                .where(WorkerRow.id == worker_id, WorkerRow.status.in_(expected))
                .values(**values)
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    @db_retry()
    def mark_silent_workers_dead(self, cutoff: datetime) -> list[str]:
        """Alive workers whose last heartbeat is before ``cutoff`` (on the database's clock,
        see :meth:`database_time`) become dead; returns their ids."""
        with self.session() as s:
            ids = list(
                s.scalars(
                    sa.select(WorkerRow.id).where(
                        WorkerRow.status == WorkerStatus.ALIVE.value,
                        WorkerRow.last_heartbeat < cutoff,
                    )
                )
            )
            expected = [e.value for e in WORKERS.sources(WorkerStatus.DEAD)]
            if ids:
                s.execute(
                    sa.update(WorkerRow)
                    .where(WorkerRow.id.in_(ids), WorkerRow.status.in_(expected))
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
