"""Security and bad input at the API edge: the bearer token on every mutating endpoint (reads
open unless TUNER_PROTECT_READS), dataset paths confined to TUNER_DATA_ROOT at submit time, and
the limits on a request (body size, hyperparameters, n_trials, max_parallel, choices)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import make_settings, tiny_spec

from search_spaces.dimensions import MAX_CHOICES, MAX_DIMENSIONS
from tuner_service.api.app import create_app
from tuner_service.migrate import upgrade
from tuner_service.spec import MAX_PARALLEL, MAX_TRIALS

TOKEN = "s3cret-token"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
WARM = {"params": {"filters": 8, "dense_units": 16, "learning_rate": 0.01}}

# Every mutating endpoint, with a body that would be accepted given the right token.
MUTATING: list[tuple[str, dict[str, Any] | None]] = [
    ("/studies", tiny_spec("new-one")),
    ("/studies/1/trials", WARM),
    ("/studies/1/pause", None),
    ("/studies/1/resume", None),
    ("/studies/1/cancel", None),
]
READS = ["/studies", "/studies/1", "/studies/1/trials", "/studies/1/best",
         "/studies/1/best/model", "/workers"]


def _client(sqlite_url: str, tmp_path: Path, **kw: object) -> TestClient:
    upgrade(sqlite_url)
    app = create_app(make_settings(sqlite_url, data_root=tmp_path / "data", **kw),
                     run_reaper=False)
    app.state.services.create_study(tiny_spec("existing"))
    return TestClient(app)


@pytest.fixture
def protected(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with _client(sqlite_url, tmp_path, api_token=TOKEN) as c:
        yield c


@pytest.fixture
def open_api(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "data").mkdir()
    with _client(sqlite_url, tmp_path) as c:
        yield c


# --------------------------------------------------------------------------- the token


@pytest.mark.parametrize("path,body", MUTATING)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
     {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}],
    ids=["none", "wrong", "longer", "no-scheme", "basic", "empty"],
)
def test_mutating_endpoints_need_the_token(
    protected: TestClient, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> None:
    r = protected.post(path, json=body, headers=headers)
    assert r.status_code == 401, (path, headers, r.text)
    assert r.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in r.json()["detail"]
    # nothing happened
    assert protected.get("/studies/1").json()["status"] == "queued"
    assert protected.get("/studies").json()["count"] == 1


@pytest.mark.parametrize("path,body", MUTATING)
def test_mutating_endpoints_accept_the_right_token(
    protected: TestClient, path: str, body: dict[str, Any] | None
) -> None:
    if path.endswith("/resume"):
        protected.post("/studies/1/pause", headers=GOOD)
    r = protected.post(path, json=body, headers=GOOD)
    assert r.status_code in (200, 201, 202), r.text


@pytest.mark.parametrize("path", READS)
def test_reads_stay_open_by_default(protected: TestClient, path: str) -> None:
    assert protected.get(path).status_code != 401


@pytest.mark.parametrize("path", READS)
def test_protect_reads_requires_the_token_for_reads(
    sqlite_url: str, tmp_path: Path, path: str
) -> None:
    with _client(sqlite_url, tmp_path, api_token=TOKEN, protect_reads=True) as c:
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get(path, headers=GOOD).status_code in (200, 404)
        assert c.get("/healthz").status_code == 200  # health checks stay open


def test_without_a_token_nothing_is_required(open_api: TestClient) -> None:
    assert open_api.post("/studies/1/pause").status_code == 200


# --------------------------------------------------------------------------- dataset paths


def _path_spec(name: str, path: str, kind: str = "npz") -> dict[str, object]:
    return tiny_spec(name, dataset={"name": kind, "path": path})


@pytest.mark.parametrize("kind", ["npz", "image_folder"])
def test_dataset_paths_leaving_the_data_root_are_422(
    open_api: TestClient, tmp_path: Path, kind: str
) -> None:
    root = tmp_path / "data"
    (tmp_path / "secret.npz").write_bytes(b"x")
    (root / "escape").symlink_to(tmp_path)
    (root / "inner").mkdir()
    (root / "inner" / "up").symlink_to(root.parent)
    bad = ["../secret.npz", "sub/../../secret.npz", str(tmp_path / "secret.npz"), "/etc/passwd",
           "escape/secret.npz", "inner/up/secret.npz", " ", "..", "/"]
    for i, path in enumerate(bad):
        r = open_api.post("/studies", json=_path_spec(f"bad{i}", path, kind))
        assert r.status_code == 422, (path, r.text)
        problems = r.json()["detail"]
        assert any(p["loc"] == ["body", "dataset", "path"] for p in problems), problems
        msg = " ".join(p["msg"] for p in problems)
        assert "data root" in msg or "empty" in msg
        assert "resolves to" not in msg  # the resolved server path is not disclosed
    assert open_api.get("/studies").json()["count"] == 1  # none was created


def test_dataset_paths_inside_the_root_are_accepted_even_when_missing(
    open_api: TestClient, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    (root / "sets").mkdir()
    (root / "sets" / "real.npz").write_bytes(b"x")
    (root / "alias").symlink_to(root / "sets")  # a symlink that stays inside is fine
    good = ["sets/real.npz", "missing/on/this/host.npz", "sets/../sets/real.npz",
            str(root / "sets" / "real.npz"), "alias/real.npz"]
    for i, path in enumerate(good):
        r = open_api.post("/studies", json=_path_spec(f"good{i}", path))
        assert r.status_code == 201, (path, r.text)


# --------------------------------------------------------------------------- limits


def _problems(r: Any) -> dict[tuple[Any, ...], str]:
    assert r.status_code == 422, r.text
    return {tuple(p["loc"]): p["msg"] for p in r.json()["detail"]}


def test_n_trials_and_max_parallel_limits(open_api: TestClient) -> None:
    spec = tiny_spec("limits", budget={"n_trials": MAX_TRIALS + 1, "max_epochs": 1,
                                       "max_parallel": MAX_PARALLEL + 1})
    problems = _problems(open_api.post("/studies", json=spec))
    assert str(MAX_TRIALS) in problems[("body", "budget", "n_trials")]
    assert str(MAX_PARALLEL) in problems[("body", "budget", "max_parallel")]
    at_limit = tiny_spec("at-limit", budget={"n_trials": MAX_TRIALS, "max_epochs": 1,
                                             "max_parallel": MAX_PARALLEL})
    assert open_api.post("/studies", json=at_limit).status_code == 201


def test_number_of_hyperparameters_is_limited(open_api: TestClient) -> None:
    space = {f"hp{i}": {"type": "float", "low": 0.0, "high": 1.0}
             for i in range(MAX_DIMENSIONS + 1)}
    r = open_api.post("/studies", json=tiny_spec("dims", search_space=space))
    problems = _problems(r)
    msg = " ".join(problems.values())
    assert str(MAX_DIMENSIONS) in msg and "dimensions" in msg


def test_categorical_choices_are_limited(open_api: TestClient) -> None:
    space = {"dense_units": {"type": "categorical", "choices": list(range(1, MAX_CHOICES + 2))}}
    problems = _problems(open_api.post("/studies", json=tiny_spec("choices", search_space=space)))
    loc, msg = next((k, v) for k, v in problems.items() if k[:3] == ("body", "search_space",
                                                                       "dense_units"))
    assert str(MAX_CHOICES) in msg, (loc, msg)


def test_request_body_size_is_limited(sqlite_url: str, tmp_path: Path) -> None:
    with _client(sqlite_url, tmp_path, max_body_bytes=2000) as c:
        r = c.post("/studies", json=tiny_spec("big", description="x" * 5000))
        assert r.status_code == 413
        assert "2000 bytes" in r.json()["detail"]
        assert c.post("/studies", json=tiny_spec("small")).status_code == 201
