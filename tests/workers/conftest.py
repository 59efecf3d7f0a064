"""Shared fixtures of the worker tests (TensorFlow on CPU, tiny models)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts from a clean Keras session and global dtype policy."""
    yield
    import sys

    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("float32")
