"""Artifact blobs (models, weights) behind Optuna's artifact API."""

from __future__ import annotations

import sqlalchemy as sa

from ..db import db_retry
from ..models import ArtifactRow
from .base import RepositoryBase, utcnow


class ArtifactsMixin(RepositoryBase):
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

    @db_retry()
    def existing_artifacts(self, artifact_ids: list[str]) -> set[str]:
        """Those of ``artifact_ids`` that are stored (ids only: no blob is read)."""
        if not artifact_ids:
            return set()
        with self.session() as s:
            q = sa.select(ArtifactRow.id).where(ArtifactRow.id.in_(artifact_ids))
            return set(s.scalars(q))
