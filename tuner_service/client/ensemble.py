"""The ensemble of a study as the client returns it (``GET /studies/{id}/ensemble``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SplitMetrics(BaseModel):
    """Metrics of the ensemble and of the best single trial on one split."""

    model_config = ConfigDict(extra="allow")
    ensemble: dict[str, float]
    best_trial: dict[str, float]


class EnsembleInfo(BaseModel):
    """Members (trial numbers, best first), their weights, the method, and the metrics of the
    ensemble next to the best single trial on the validation and test splits. A build that
    failed or was skipped leaves ``error`` or ``skipped`` and no members."""

    model_config = ConfigDict(extra="allow")
    study_id: int
    evaluation_state: str | None = None
    method: str | None = None
    size: int | None = None
    members: list[int] = []
    weights: list[float] = []
    best_trial_number: int | None = None
    validation: SplitMetrics | None = None
    test: SplitMetrics | None = None
    model_artifact_id: str | None = None
    error: str | None = None
    skipped: str | None = None

    @property
    def built(self) -> bool:
        """True when the ensemble has members and a saved model."""
        return bool(self.members) and self.model_artifact_id is not None

