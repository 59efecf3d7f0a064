"""Response and request bodies of the API (pydantic); the study spec is in tuner_service.spec."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StudyPublic(BaseModel):
    id: int
    name: str
    status: str
    status_reason: str | None = None
    engine: str
    n_trials: int
    max_parallel: int
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int


class BestSummary(BaseModel):
    number: int
    value: float | None = None
    values: list[float | None] | None = None
    params: dict[str, Any]


class StudyDetail(StudyPublic):
    spec: dict[str, Any]
    updated_at: str
    directions: list[str]
    trial_counts: dict[str, int]
    budget: dict[str, int | float | None]
    best_trial: BestSummary | None = None
    best_trials: list[BestSummary] | None = None
    evaluation_state: str | None = None
    evaluation: dict[str, Any] | None = None
    total_trial_seconds: float  # wall time of every trial, summed
    total_device_seconds: float = 0.0  # accelerator (or CPU) time of every trial, summed


class TrialPublic(BaseModel):
    number: int
    state: str
    params: dict[str, Any]
    value: float | None = None
    values: list[float | None] | None = None
    intermediate_values: dict[str, float | None]
    datetime_start: str | None = None
    datetime_complete: str | None = None
    duration_s: float | None = None
    worker: str | None = None
    fail_reason: str | None = None
    retry_of: int | None = None
    retry_count: int = 0
    warm_start: bool = False
    user_attrs: dict[str, Any] = Field(default_factory=dict)


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int


class BestTrialPublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    study_id: int
    evaluation_state: str | None = None


class EnqueueTrial(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(description="A configuration of the study's search space.")


class Message(BaseModel):
    message: str


class CurrentTrial(BaseModel):
    study_id: int
    trial_number: int | None = None


class WorkerPublic(BaseModel):
    id: str
    host: str
    pid: int
    device: str
    status: str
    started_at: str
    last_heartbeat: str
    current_trial: CurrentTrial | None = None


class WorkersPublic(BaseModel):
    data: list[WorkerPublic]
    count: int


class Health(BaseModel):
    status: str
    database: str
    schema_revision: str | None = None


class ErrorPublic(BaseModel):
    """An error: a message, or (422) the list of problems, each with its JSON path."""

    detail: str | list[dict[str, Any]]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer with."""
    what = {
        401: "API token missing or wrong (TUNER_API_TOKEN)",
        404: "no such study (or nothing to show yet)",
        409: "conflict with the study's name or status",
        413: "request body too large (TUNER_MAX_BODY_BYTES)",
    }
    return {c: {"model": ErrorPublic, "description": what[c]} for c in codes}
