"""A study's ensemble end to end in one worker process: kept models, the build at the final
evaluation, the API and CLI views, the on-demand rebuild, and a build whose worker died."""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from fastapi.testclient import TestClient
from support import make_settings, tiny_spec

from tuner_service import ensembles
from tuner_service.api.app import create_app
from tuner_service.errors import ConflictError
from tuner_service.optuna_bridge import ATTR_MODEL_ARTIFACT
from tuner_service.service import Services
from tuner_service.spec import DatasetSpec
from tuner_service.states import EvaluationState, WorkerStatus
from workers.datasets import load_dataset
from workers.ensemble.weights import weighted_average
from workers.evaluation import evaluate_pending, load_trial_model
from workers.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow


def _run(services: Services) -> Worker:
    w = Worker(services, WorkerOptions(exit_when_idle=0.5))
    w.run()
    return w


def _stored_models(services: Services, name: str) -> set[int]:
    study = optuna.load_study(study_name=name, storage=services.storage)
    ids = {t.number: t.user_attrs.get(ATTR_MODEL_ARTIFACT) for t in study.trials}
    stored = services.repo.existing_artifacts([a for a in ids.values() if a])
    return {n for n, a in ids.items() if a in stored}


def test_study_ensemble_is_built_kept_and_exported(services: Services, sqlite_url: str) -> None:
    spec = tiny_spec("ens", budget={"n_trials": 5, "max_epochs": 2},
                     ensemble={"size": 3, "method": "weighted"})
    row = services.create_study(spec)
    _run(services)
    record = ensembles.ensemble(services, row.id)
    assert record["evaluation_state"] == "done"
    assert record["method"] == "weighted" and 1 <= len(record["members"]) <= 3
    assert sum(record["weights"]) == pytest.approx(1.0)
    for split in ("validation", "test"):
        assert set(record[split]) == {"ensemble", "best_trial"}
        assert 0.0 <= record[split]["ensemble"]["accuracy"] <= 1.0
    best = services.best(row.id)
    assert record["best_trial_number"] == best["number"] == record["members"][0]
    # only the kept models stay stored (keep_models="top"), and the members are among them
    stored = _stored_models(services, "ens")
    assert set(record["members"]) <= stored and len(stored) <= 3

    # the exported file predicts the weighted average of its members
    name, blob = ensembles.ensemble_model(services, row.id)
    assert name == f"study{row.id}-ensemble.keras"
    data = load_dataset(DatasetSpec.model_validate(spec["dataset"]))
    study = optuna.load_study(study_name="ens", storage=services.storage)
    members = [load_trial_model(services, study.trials[n].user_attrs[ATTR_MODEL_ARTIFACT])
               for n in record["members"]]
    expected = weighted_average([m.predict(data.x_test, verbose=0) for m in members],
                                record["weights"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(blob)
        got = keras.models.load_model(path).predict(data.x_test, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # optuna-dashboard sees the summary and the file
    assert study.user_attrs["ensemble"]["members"] == record["members"]

    # the same through the API
    app = create_app(make_settings(sqlite_url), run_reaper=False)
    with TestClient(app) as client:
        got_json = client.get(f"/studies/{row.id}/ensemble").json()
        assert got_json["members"] == record["members"]
        model = client.get(f"/studies/{row.id}/ensemble/model")
        assert model.status_code == 200 and model.content == blob
        assert client.post(f"/studies/{row.id}/ensemble", json={"method": "vote"}
                           ).status_code == 422
        assert client.get("/studies/999/ensemble").status_code == 404


def test_on_demand_rebuild_with_another_method(services: Services) -> None:
    row = services.create_study(tiny_spec("again", budget={"n_trials": 3, "max_epochs": 1},
                                          ensemble={"size": 3, "keep_models": "all"}))
    _run(services)
    assert ensembles.ensemble(services, row.id)["method"] == "weighted"
    assert _stored_models(services, "again") == {0, 1, 2}  # keep_models="all"
    answer = ensembles.request_ensemble(services, row.id, 2, "greedy")
    assert answer["evaluation_state"] == "pending"
    with pytest.raises(ConflictError, match="pending"):  # one request at a time
        ensembles.request_ensemble(services, row.id, 2, "mean")
    _run(services)
    record = ensembles.ensemble(services, row.id)
    assert record["method"] == "greedy" and len(record["members"]) == 2
    assert sum(record["weights"]) == pytest.approx(1.0)


def test_ensemble_requests_on_running_studies_conflict(services: Services) -> None:
    row = services.create_study(tiny_spec("early"))
    with pytest.raises(ConflictError, match="completed"):
        ensembles.request_ensemble(services, row.id, 3, "mean")


def test_a_build_whose_worker_died_is_done_by_another(services: Services) -> None:
    row = services.create_study(tiny_spec("orphan", budget={"n_trials": 2, "max_epochs": 1}))
    w = Worker(services, WorkerOptions(exit_when_idle=0.5))
    w.run()
    assert services.study_row(row.id).evaluation_state == "done"
    # a worker took the evaluation again, then was killed (the reaper declared it dead)
    services.repo.register_worker(worker_id="ghost", host="h", pid=1, device="cpu", info={})
    ensembles.request_ensemble(services, row.id, 2, "mean")
    assert services.repo.take_evaluation(row.id, "ghost")
    assert evaluate_pending(services, w.datasets, "other") == 0  # held by a live worker
    assert services.study_row(row.id).evaluation_state == "running"
    services.repo.set_worker_status("ghost", WorkerStatus.DEAD)
    assert services.repo.take_back_evaluations(
        services.repo.database_time(), max_attempts=3) == [(row.id, EvaluationState.PENDING)]
    assert evaluate_pending(services, w.datasets, "other") == 1
    assert services.study_row(row.id).evaluation_state == "done"
    record = ensembles.ensemble(services, row.id)
    assert record["method"] == "mean" and len(record["members"]) == 2  # the request survived
