"""TUNER_MAX_BODY_BYTES holds however a body is sent (with a Content-Length, chunked without
one, through the real server), and no error response echoes a large input back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from processes import api_server
from support import make_settings, tiny_spec

from tuner_service.api.app import create_app
from tuner_service.migrate import upgrade

LIMIT = 4000


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    upgrade(sqlite_url)
    app = create_app(make_settings(sqlite_url, data_root=tmp_path / "data",
                                   max_body_bytes=LIMIT), run_reaper=False)
    with TestClient(app) as c:
        yield c


def _chunks(body: bytes, size: int = 512) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i:i + size]


def test_declared_length_over_the_limit_is_413(client: TestClient) -> None:
    r = client.post("/studies", json=tiny_spec("big", description="x" * 2 * LIMIT))
    assert r.status_code == 413 and f"{LIMIT} bytes" in r.json()["detail"]
    assert len(r.content) < 200


def test_chunked_body_without_length_is_counted(client: TestClient) -> None:
    body = json.dumps(tiny_spec("chunked", description="x" * 2 * LIMIT)).encode()
    r = client.post("/studies", content=_chunks(body),
                    headers={"content-type": "application/json"})
    assert r.request.headers.get("content-length") is None  # really sent chunked
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    assert len(r.content) < 200


def test_chunked_body_under_the_limit_is_served(client: TestClient) -> None:
    body = json.dumps(tiny_spec("small-chunked")).encode()
    assert len(body) < LIMIT
    r = client.post("/studies", content=_chunks(body, 100),
                    headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


def test_a_422_does_not_echo_a_large_input(client: TestClient) -> None:
    big = "y" * (LIMIT - 1000)  # under the body limit, far over what an error echoes
    r = client.post("/studies", json=tiny_spec("echo", dataset=big))
    assert r.status_code == 422
    assert big not in r.text and len(r.content) < 1000, r.text
    (problem,) = [p for p in r.json()["detail"] if p["loc"][:2] == ["body", "dataset"]]
    assert "not echoed" in problem["input"]


def test_a_422_still_echoes_a_short_input(client: TestClient) -> None:
    r = client.post("/studies", json=tiny_spec("short", seed="abc"))
    assert r.status_code == 422
    (problem,) = [p for p in r.json()["detail"] if p["loc"] == ["body", "seed"]]
    assert problem["input"] == "abc"


@pytest.mark.slow
def test_real_server_refuses_a_30_mb_chunked_body(tmp_path: Path) -> None:
    """The issue's case: 30 MB without a Content-Length used to be read whole, and the 422
    echoed it back."""
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    with api_server(url, tmp_path) as server:
        def body() -> Iterator[bytes]:
            yield b'{"name": "huge", "description": "'
            for _ in range(30 * 1024):
                yield b"z" * 1024
            yield b'"}'

        try:
            r = httpx.post(f"{server.base}/studies", content=body(), timeout=60,
                           headers={"content-type": "application/json"})
        except httpx.TransportError:  # the server may close before the upload ends: fine
            pass
        else:
            assert r.status_code == 413 and len(r.content) < 200, r.text[:300]
        assert server.get("/studies")["count"] == 0
