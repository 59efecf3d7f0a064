"""Helpers of the operations tests (importable as ``ops_support``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes import wait_http

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


@contextmanager
def serving(cmd: list[str], port: int, log: Path, env: dict[str, str]) -> Iterator[str]:
    """Run a dashboard command until the block ends; yields its base URL once it answers."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/api/meta", proc, log)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)
