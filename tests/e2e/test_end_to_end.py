"""The product's main path with real processes: ``tuner-service serve`` plus two
``tuner-worker`` daemons run a digits study to completion, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import httpx
import optuna
import pytest
from processes import (
    api_server,
    check_invariants,
    load_record,
    start_worker,
    stop_processes,
    wait_done,
)
from support import TINY_SPACE

pytestmark = pytest.mark.slow


def run_study_end_to_end(url: str, tmp_path: Path) -> None:
    spec = {
        "name": "digits-e2e",
        "dataset": {"name": "digits", "validation_split": 0.2, "seed": 0},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "engine": {"kind": "optuna", "sampler": "tpe", "pruner": "median"},
        "budget": {"n_trials": 6, "max_epochs": 2, "max_parallel": 2},
        "search_space": TINY_SPACE,
        "seed": 7,
    }
    with api_server(url, tmp_path, TUNER_GRACE_PERIOD="10") as api:
        r = api.post("/studies", spec)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        workers = [
            start_worker(url, tmp_path, f"worker{i}", TUNER_GRACE_PERIOD="10") for i in range(2)
        ]
        try:
            detail = wait_done(api, sid)
            assert detail["status"] == "completed", detail
            assert api.get("/workers")["count"] == 2
        finally:
            codes = stop_processes(workers)
        assert codes == [0, 0]  # SIGTERM: clean exit
        counts = detail["trial_counts"]
        assert counts["complete"] + counts["pruned"] + counts["fail"] == 6
        assert counts["running"] == 0 and counts["waiting"] == 0
        trials = api.get(f"/studies/{sid}/trials")["data"]
        assert len(trials) == 6
        assert len({t["worker"] for t in trials}) == 2  # both workers trained
        best = api.get(f"/studies/{sid}/best")
        assert 0.0 <= best["test_metrics"]["test_accuracy"] <= 1.0
        model = httpx.get(f"{api.base}/studies/{sid}/best/model", timeout=30)
        assert model.status_code == 200 and len(model.content) > 1000
        assert api.get("/workers")["count"] == 0  # both unregistered cleanly
    # exact budget, no trial handed out twice, max_parallel, nothing left running
    check_invariants(load_record(url, "digits-e2e"), n_trials=6, max_parallel=2)
    # plain Optuna sees every trial with its params and per-epoch values
    study = optuna.load_study(study_name="digits-e2e", storage=url)
    assert len(study.trials) == 6
    for t in study.trials:
        assert "learning_rate" in t.params
        assert t.intermediate_values


def test_end_to_end_on_sqlite(tmp_path: Path) -> None:
    run_study_end_to_end(f"sqlite:///{tmp_path / 'tuner.db'}", tmp_path)


@pytest.mark.postgres
def test_end_to_end_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    run_study_end_to_end(pg_url, tmp_path)


@pytest.mark.mariadb
def test_end_to_end_on_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    run_study_end_to_end(mariadb_url, tmp_path)
