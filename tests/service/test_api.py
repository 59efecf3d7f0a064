"""The REST contract: every endpoint and its error statuses (no worker, no TensorFlow)."""

from __future__ import annotations

import sys

import optuna
import pytest
from fastapi.testclient import TestClient
from support import tiny_spec

from tuner_service.migrate import head_revision
from tuner_service.queue import claim


def test_create_study_returns_201_with_id_name_status(client: TestClient) -> None:
    r = client.post("/studies", json=tiny_spec("first"))
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "first"
    assert body["status"] == "queued"
    assert isinstance(body["id"], int)


def test_duplicate_name_is_409(client: TestClient) -> None:
    assert client.post("/studies", json=tiny_spec("dup")).status_code == 201
    r = client.post("/studies", json=tiny_spec("dup"))
    assert r.status_code == 409
    assert "dup" in r.json()["detail"]


def test_a_creation_interrupted_after_optunas_commit_does_not_block_the_name(
    client: TestClient,
) -> None:
    """An Optuna study that an interrupted creation left (its answer lost after the commit,
    or the process stopped before the service's row) is replaced; a study another program
    keeps under the same name (it has trials) is not, and the name stays taken (409)."""
    storage = client.app.state.services.storage  # type: ignore[attr-defined]
    optuna.create_study(study_name="orphan", storage=storage, direction="maximize")
    r = client.post("/studies", json=tiny_spec("orphan"))
    assert r.status_code == 201, r.text
    assert client.get(f"/studies/{r.json()['id']}").json()["name"] == "orphan"
    theirs = optuna.create_study(study_name="theirs", storage=storage)
    theirs.enqueue_trial({"x": 1.0})
    assert client.post("/studies", json=tiny_spec("theirs")).status_code == 409
    assert len(optuna.load_study(study_name="theirs", storage=storage).trials) == 1


def test_invalid_spec_lists_every_problem_with_its_path(client: TestClient) -> None:
    spec = tiny_spec("bad")
    spec["dataset"] = {"name": "nope"}
    spec["budget"] = {"n_trials": 0}
    spec["search_space"] = {
        "learning_rat": {"type": "float", "low": 1e-3, "high": 1e-1},
        "dropout": {"type": "float", "low": 0.5, "high": 0.1},
    }
    r = client.post("/studies", json=spec)
    assert r.status_code == 422
    locs = [tuple(e["loc"]) for e in r.json()["detail"]]
    assert ("body", "dataset", "name") in locs
    assert ("body", "budget", "n_trials") in locs
    assert ("body", "search_space", "learning_rat") in locs
    assert any(loc[:3] == ("body", "search_space", "dropout") for loc in locs)
    msgs = " ".join(e["msg"] for e in r.json()["detail"])
    assert "learning_rate" in msgs  # the suggestion


def test_space_problems_alone_are_422_with_paths(client: TestClient) -> None:
    spec = tiny_spec("bad-space")
    spec["search_space"] = {"activation": {"type": "categorical", "choices": ["relu", "nope"]}}
    r = client.post("/studies", json=spec)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:3] == ["body", "search_space", "activation"]


def test_engine_options_are_checked(client: TestClient) -> None:
    spec = tiny_spec(
        "bad-pruner",
        engine={
            "kind": "optuna",
            "sampler": "tpe",
            "pruner": "median",
            "pruner_options": {"bogus": 1},
        },
    )
    r = client.post("/studies", json=spec)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "engine", "pruner_options"]


def test_grid_sampler_budget_cannot_exceed_grid(client: TestClient) -> None:
    space = {"filters": {"type": "categorical", "choices": [4, 8]}}
    spec = tiny_spec(
        "grid",
        search_space=space,
        engine={"kind": "optuna", "sampler": "grid", "pruner": "none"},
        budget={"n_trials": 3, "max_epochs": 1},
    )
    r = client.post("/studies", json=spec)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "budget", "n_trials"]


def test_list_studies_paginates_and_filters(client: TestClient) -> None:
    for i in range(3):
        client.post("/studies", json=tiny_spec(f"s{i}"))
    client.post("/studies/2/pause")
    r = client.get("/studies", params={"limit": 2, "offset": 0})
    assert r.json()["count"] == 3
    assert [s["name"] for s in r.json()["data"]] == ["s0", "s1"]
    r = client.get("/studies", params={"limit": 2, "offset": 2})
    assert [s["name"] for s in r.json()["data"]] == ["s2"]
    r = client.get("/studies", params={"status": "paused"})
    assert r.json()["count"] == 1
    assert r.json()["data"][0]["name"] == "s1"
    assert client.get("/studies", params={"status": "bogus"}).status_code == 422
    assert client.get("/studies", params={"limit": 0}).status_code == 422


def test_get_study_shows_spec_counts_budget_and_timestamps(client: TestClient) -> None:
    sid = client.post("/studies", json=tiny_spec("detail")).json()["id"]
    d = client.get(f"/studies/{sid}").json()
    assert d["spec"]["dataset"]["name"] == "synthetic"
    assert d["status"] == "queued"
    assert d["trial_counts"]["complete"] == 0
    assert d["budget"]["n_trials"] == 3
    assert d["best_trial"] is None
    assert d["created_at"]


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/studies/99"),
        ("get", "/studies/99/trials"),
        ("get", "/studies/99/best"),
        ("get", "/studies/99/best/model"),
        ("post", "/studies/99/pause"),
        ("post", "/studies/99/resume"),
        ("post", "/studies/99/cancel"),
    ],
)
def test_unknown_study_is_404(client: TestClient, method: str, path: str) -> None:
    assert getattr(client, method)(path).status_code == 404


def test_best_is_404_until_a_trial_finished(client: TestClient) -> None:
    sid = client.post("/studies", json=tiny_spec("nobest")).json()["id"]
    r = client.get(f"/studies/{sid}/best")
    assert r.status_code == 404
    assert "no finished trial" in r.json()["detail"]


def test_pause_resume_cancel_transitions(client: TestClient) -> None:
    sid = client.post("/studies", json=tiny_spec("life")).json()["id"]
    assert client.post(f"/studies/{sid}/resume").status_code == 409  # not paused
    assert client.post(f"/studies/{sid}/pause").json()["status"] == "paused"
    assert client.post(f"/studies/{sid}/resume").json()["status"] == "queued"
    assert client.post(f"/studies/{sid}/cancel").json()["status"] == "cancelled"
    r = client.post(f"/studies/{sid}/resume")
    assert r.status_code == 409
    assert client.post(f"/studies/{sid}/pause").status_code == 409


def test_paused_study_hands_out_no_trial(client: TestClient) -> None:
    sid = client.post("/studies", json=tiny_spec("paused")).json()["id"]
    services = client.app.state.services  # type: ignore[attr-defined]
    services.repo.register_worker(worker_id="w1", host="h", pid=1, device="cpu", info={})
    client.post(f"/studies/{sid}/pause")
    assert claim(services.repo, "w1") is None
    client.post(f"/studies/{sid}/resume")
    c = claim(services.repo, "w1")
    assert c is not None and c.study.id == sid
    assert client.get(f"/studies/{sid}").json()["status"] == "running"


def test_enqueue_trial_validates_params_against_the_space(client: TestClient) -> None:
    sid = client.post("/studies", json=tiny_spec("warm")).json()["id"]
    good = {"filters": 8, "dense_units": 16, "learning_rate": 0.01}
    r = client.post(f"/studies/{sid}/trials", json={"params": good})
    assert r.status_code == 202
    r = client.post(
        f"/studies/{sid}/trials",
        json={"params": {"filters": 5, "dense_units": 16, "learning_rate": 0.01}},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:3] == ["body", "params", "filters"]
    r = client.post(f"/studies/{sid}/trials", json={"params": {**good, "bogus": 1}})
    assert r.status_code == 422
    assert client.post(f"/studies/{sid}/trials", json={}).status_code == 422
    waiting = client.get(f"/studies/{sid}/trials", params={"state": "waiting"}).json()
    assert waiting["count"] == 1
    client.post(f"/studies/{sid}/cancel")
    assert client.post(f"/studies/{sid}/trials", json={"params": good}).status_code == 409


def test_trials_endpoint_paginates_and_filters(client: TestClient) -> None:
    sid = client.post("/studies", json=tiny_spec("trials")).json()["id"]
    for lr in (0.001, 0.002, 0.003):
        client.post(
            f"/studies/{sid}/trials",
            json={"params": {"filters": 4, "dense_units": 8, "learning_rate": lr}},
        )
    r = client.get(f"/studies/{sid}/trials", params={"limit": 2, "offset": 1}).json()
    assert r["count"] == 3
    assert [t["number"] for t in r["data"]] == [1, 2]
    assert client.get(f"/studies/{sid}/trials", params={"state": "complete"}).json()["count"] == 0
    assert client.get(f"/studies/{sid}/trials", params={"state": "nope"}).status_code == 422


def test_optuna_sees_the_study(client: TestClient, sqlite_url: str) -> None:
    client.post("/studies", json=tiny_spec("visible"))
    study = optuna.load_study(study_name="visible", storage=sqlite_url)
    assert study.user_attrs["tuner_spec"]["name"] == "visible"
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_multi_objective_directions(client: TestClient) -> None:
    spec = tiny_spec(
        "multi",
        objective=[{"metric": "val_accuracy"}, {"metric": "params"}],
        engine={"kind": "optuna", "sampler": "nsga2", "pruner": "none"},
    )
    sid = client.post("/studies", json=spec).json()["id"]
    assert client.get(f"/studies/{sid}").json()["directions"] == ["maximize", "minimize"]


def test_workers_and_healthz(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    services.repo.register_worker(worker_id="w-a", host="gpu1", pid=42, device="gpu:0", info={})
    body = client.get("/workers").json()
    assert body["count"] == 1
    w = body["data"][0]
    assert (w["id"], w["host"], w["pid"], w["device"]) == ("w-a", "gpu1", 42, "gpu:0")
    assert w["last_heartbeat"] and w["started_at"] and w["current_trial"] is None
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["schema_revision"] == head_revision()


def test_oversized_body_is_413(client: TestClient) -> None:
    spec = tiny_spec("big", description="x" * 2_000_000)
    assert client.post("/studies", json=spec).status_code == 413


def test_openapi_documents_the_contract(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/studies",
        "/studies/{study_id}",
        "/studies/{study_id}/trials",
        "/studies/{study_id}/best",
        "/studies/{study_id}/pause",
        "/studies/{study_id}/resume",
        "/studies/{study_id}/cancel",
        "/workers",
        "/healthz",
    ):
        assert p in paths


def test_api_does_not_import_tensorflow(client: TestClient) -> None:
    client.get("/studies")
    assert not any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules) or (
        # another test module in this process may have imported it; check in a fresh process
        _fresh_process_imports_tf() is False
    )


def _fresh_process_imports_tf() -> bool:
    import subprocess

    code = (
        "import sys; from tuner_service.api.app import create_app; "
        "from tuner_service.cli import app; create_app(); "
        "print(any(m.startswith(('tensorflow','keras')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"
