"""An Optuna ``ArtifactStore`` that keeps artifacts (saved models) in the service database.

Every host that can reach the database can then read a model a worker on another host saved:
no shared file system or object store is needed.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO

from optuna.artifacts.exceptions import ArtifactNotFound

if TYPE_CHECKING:
    from .repository import Repository


class DatabaseArtifactStore:
    """Implements ``optuna.artifacts._protocol.ArtifactStore``."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    def open_reader(self, artifact_id: str) -> BinaryIO:
        """Raises:
        ArtifactNotFound: no artifact has this id.
        """
        data = self._repo.get_artifact(artifact_id)
        if data is None:
            raise ArtifactNotFound(f"artifact {artifact_id} not found")
        return io.BytesIO(data)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self._repo.put_artifact(artifact_id, content_body.read())

    def remove(self, artifact_id: str) -> None:
        """Raises:
        ArtifactNotFound: no artifact has this id.
        """
        if not self._repo.delete_artifact(artifact_id):
            raise ArtifactNotFound(f"artifact {artifact_id} not found")
