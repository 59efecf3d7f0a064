"""Dataset path confinement for the workers: the pure logic lives in the control plane
(:mod:`tuner_service.data_paths`), so that the API refuses escaping paths at submit time with
the very same rules, without importing TensorFlow."""

from __future__ import annotations

from tuner_service.data_paths import DataPathError, resolve_data_path

__all__ = ["DataPathError", "resolve_data_path"]
