"""Structured logs carry the study id and trial number on every line of a trial; each trial
records its wall time and device-seconds, and GET /studies/{id} shows the study's total."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from ops_support import TrainedStudy

from tuner_service.api.app import create_app

pytestmark = pytest.mark.slow


def test_every_json_line_of_a_trial_has_study_id_and_trial_number(trained: TrainedStudy) -> None:
    prefix = f"study {trained.study_id} trial "
    trial_lines = [r for r in trained.log_lines if r["message"].startswith(prefix)]
    # a start line, one line per epoch (3) and an outcome line, for each of the 2 trials
    assert len(trial_lines) == 2 * 5, trained.log_lines
    for r in trial_lines:
        number = int(r["message"][len(prefix):].split(":")[0].split()[0])
        assert r["study_id"] == trained.study_id, r
        assert r["trial_number"] == number, r
        assert r["worker_id"], r
    assert {r["trial_number"] for r in trial_lines} == {0, 1}
    # lines outside a trial (registration, shutdown) carry no trial number
    outside = [r for r in trained.log_lines if "registered on" in r["message"]]
    assert outside and all("trial_number" not in r for r in outside)


def test_trials_record_wall_time_and_device_seconds_and_the_study_shows_the_total(
    trained: TrainedStudy,
) -> None:
    app = create_app(trained.services.settings, run_reaper=False)
    with TestClient(app) as client:
        detail = client.get(f"/studies/{trained.study_id}").json()
        trials = client.get(f"/studies/{trained.study_id}/trials").json()["data"]
    assert len(trials) == 2
    for t in trials:
        attrs = t["user_attrs"]
        assert attrs["wall_time_s"] > 0
        assert attrs["device_seconds"]  # recorded, non-zero
        # and what makes it reproducible
        assert attrs["seed"] is not None
        assert len(attrs["dataset_fingerprint"]) == 64
        assert {"tensorflow", "keras", "optuna", "python"} <= set(attrs["versions"])
        assert attrs["full_params"]["learning_rate"] == t["params"]["learning_rate"]
    assert detail["total_trial_seconds"] == pytest.approx(
        sum(t["user_attrs"]["wall_time_s"] for t in trials)
    )
    assert detail["total_device_seconds"] == pytest.approx(
        sum(t["user_attrs"]["device_seconds"] for t in trials)
    )
    assert detail["total_device_seconds"]  # recorded, non-zero
