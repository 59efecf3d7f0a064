"""optuna-dashboard, the real one, on a database in which the service ran an Optuna study, a
Keras Tuner study and a grid study: its own HTTP API lists every study with its trials and
their intermediate values. Also ``tuner-service dashboard`` (optuna-dashboard's app served on
the service's storage, with the saved models)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from ops_support import TrainedStudy
from processes import BIN, free_port, wait_http
from support import TINY_SPACE, tiny_spec

from workers.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow

EPOCHS = 3


@contextmanager
def serving(cmd: list[str], port: int, log: Path, env: dict[str, str]) -> Iterator[str]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/api/meta", proc, log)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def three_studies(trained: TrainedStudy) -> dict[str, int]:
    """study name -> number of trials: the worker's Optuna study, plus a Keras Tuner study and a
    scikeras grid study that the service's worker runs here on the same database."""
    kt = tiny_spec(
        "ops-keras-tuner",
        engine={"kind": "keras_tuner", "algorithm": "random"},
        budget={"n_trials": 2, "max_epochs": EPOCHS},
    )
    grid_space = {**TINY_SPACE, "learning_rate": {"type": "fixed", "value": 0.01}}
    grid = tiny_spec(
        "ops-grid",
        engine={"kind": "sklearn_grid", "cv": 2},
        objective={"metric": "accuracy", "direction": "maximize"},
        search_space=grid_space,
        budget={"n_trials": 2, "max_epochs": 1},
    )
    services = trained.services
    for spec in (kt, grid):
        services.create_study(spec)
    Worker(services, WorkerOptions(exit_when_idle=0.5)).run()
    for name in ("ops-keras-tuner", "ops-grid"):
        row = services.repo.get_study_by_name(name)
        assert row is not None and row.status == "completed", (name, row and row.status_reason)
    return {trained.name: 2, "ops-keras-tuner": 2, "ops-grid": 2}


def assert_dashboard_lists(base: str, expected: dict[str, int]) -> dict[str, dict]:
    studies = httpx.get(f"{base}/api/studies", timeout=30).json()["study_summaries"]
    by_name = {s["study_name"]: s for s in studies}
    assert set(expected) <= set(by_name)
    details = {}
    for name, n in expected.items():
        d = httpx.get(f"{base}/api/studies/{by_name[name]['study_id']}", timeout=30).json()
        assert d["name"] == name
        assert len(d["trials"]) == n, name
        assert d["has_intermediate_values"] is True
        for t in d["trials"]:
            assert t["state"] == "Complete"
            assert len(t["intermediate_values"]) >= 1, (name, t["number"])
            assert all(isinstance(v["value"], float) for v in t["intermediate_values"])
            assert t["values"] and t["params"]
        assert d["best_trials"]
        details[name] = d
    return details


def test_optuna_dashboard_lists_every_engines_study_with_trials_and_intermediate_values(
    trained: TrainedStudy, three_studies: dict[str, int], tmp_path: Path
) -> None:
    port = free_port()
    cmd = [str(BIN / "optuna-dashboard"), trained.url, "--port", str(port), "--host", "127.0.0.1"]
    with serving(cmd, port, tmp_path / "dashboard.log", dict(os.environ)) as base:
        details = assert_dashboard_lists(base, three_studies)
    # the worker's trials: one intermediate value per epoch (3)
    for t in details[trained.name]["trials"]:
        assert [v["step"] for v in t["intermediate_values"]] == [0, 1, 2]


def test_tuner_service_dashboard_serves_the_same_and_the_saved_models(
    trained: TrainedStudy, three_studies: dict[str, int], tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "TUNER_DATABASE_URL": trained.url}
    cmd = [str(BIN / "tuner-service"), "dashboard", "--port", str(port)]
    with serving(cmd, port, tmp_path / "dashboard.log", env) as base:
        details = assert_dashboard_lists(base, three_studies)
        assert httpx.get(f"{base}/dashboard/", timeout=30).status_code == 200  # the UI
        # the best trial's model, saved by the worker in the database, is listed and served
        best = details[trained.name]["best_trials"][0]
        assert best["artifacts"], best
        art = best["artifacts"][0]
        r = httpx.get(
            f"{base}/artifacts/{best['study_id']}/{best['trial_id']}/{art['artifact_id']}",
            timeout=30,
        )
        assert r.status_code == 200
        _, model = trained.services.best_model(trained.study_id)
        assert r.content == model
