"""Helpers of the operations tests (importable as ``ops_support``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner_service.service import Services


@dataclass
class TrainedStudy:
    """A tiny Optuna study a worker trained (see ``conftest.trained``)."""

    url: str
    services: Services
    study_id: int
    name: str
    log_lines: list[dict[str, Any]]  # the worker's JSON log lines
    tmp: Path
