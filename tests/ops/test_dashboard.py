"""optuna-dashboard, the real one, on a database in which the service ran an Optuna study, a
Keras Tuner study and a grid study: its own HTTP API lists every study with its trials and
their intermediate values. Also ``tuner-service dashboard`` (optuna-dashboard's app served on
the service's storage, with the saved models)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from ops_support import TrainedStudy, serving
from processes import BIN, free_port

pytestmark = pytest.mark.slow


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
