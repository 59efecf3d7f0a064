"""Settings, read from the environment (prefix ``TUNER_``) or a ``.env`` file, validated at start.

One setting, ``TUNER_DATABASE_URL``, is read by the API, the workers and the CLI alike.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNER_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///./tuner.db",
        description="SQLAlchemy URL of the service database (also Optuna's storage).",
    )
    api_token: SecretStr | None = Field(
        None, description="When set, mutating endpoints require 'Authorization: Bearer <token>'."
    )
    protect_reads: bool = Field(
        False, description="With api_token set, require the token for reads too."
    )
    data_root: Path = Field(
        Path("./data"), description="Folder that npz / image_folder dataset paths are inside."
    )
    heartbeat_interval: float = Field(10.0, gt=0, description="Seconds between worker heartbeats.")
    grace_period: float | None = Field(
        None,
        gt=0,
        description="Silence after which a worker's trials are re-queued "
        "(default: 3 heartbeat intervals).",
    )
    max_retries: int = Field(2, ge=0, description="Re-queues of a trial whose worker was lost.")
    poll_interval: float = Field(1.0, gt=0, description="Worker's wait when no work is available.")
    max_body_bytes: int = Field(1_000_000, gt=0, description="Largest accepted request body.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_json: bool = Field(False, description="Log one JSON object per line.")
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> Settings:
        if self.grace_period is not None and self.grace_period <= self.heartbeat_interval:
            raise ValueError("grace_period must be longer than heartbeat_interval")
        return self

    @property
    def effective_grace_period(self) -> float:
        return self.grace_period if self.grace_period is not None else 3 * self.heartbeat_interval


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]
