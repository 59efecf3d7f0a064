"""Fixtures of the service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from support import make_settings

from tuner_service.api.app import create_app
from tuner_service.migrate import upgrade


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    """The API on a fresh SQLite database, without a token and without the reaper."""
    upgrade(sqlite_url)
    app = create_app(make_settings(sqlite_url), run_reaper=False)
    with TestClient(app) as c:
        yield c
