"""The best model: ``tuner-service export`` writes what GET /studies/{id}/best/model serves, the
file reproduces the recorded validation accuracy; ``tuner-worker retrain`` (which
``tuner-service retrain`` runs) trains the best parameters again from the recorded seed and
split and reports test accuracy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import pytest
from fastapi.testclient import TestClient
from ops_support import TrainedStudy
from typer.testing import CliRunner

from tuner_service.api.app import create_app
from tuner_service.cli import app as cli
from tuner_service.spec import DatasetSpec
from workers.retrain_cli import app as worker_retrain

pytestmark = pytest.mark.slow


def val_accuracy(model: keras.Model, trained: TrainedStudy) -> float:
    from workers.datasets import load_dataset

    spec = trained.services.study_row(trained.study_id).spec
    data = load_dataset(DatasetSpec.model_validate(spec["dataset"]))
    return float(model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["accuracy"])


def test_export_writes_the_best_model_which_gives_the_recorded_val_accuracy(
    trained: TrainedStudy, tmp_path: Path
) -> None:
    out = tmp_path / "best.keras"
    r = CliRunner().invoke(
        cli, ["export", str(trained.study_id), "--out", str(out), "--database-url", trained.url]
    )
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 1000
    with TestClient(create_app(trained.services.settings, run_reaper=False)) as client:
        downloaded = client.get(f"/studies/{trained.study_id}/best/model")
        best = client.get(f"/studies/{trained.study_id}/best").json()
    assert downloaded.status_code == 200
    assert downloaded.content == out.read_bytes()  # the CLI and the API give the same file
    model = keras.models.load_model(out)
    assert val_accuracy(model, trained) == pytest.approx(best["value"], abs=1e-6)


def test_export_of_an_unknown_study_fails_cleanly(trained: TrainedStudy, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        cli, ["export", "999", "--out", str(tmp_path / "x.keras"), "--database-url", trained.url]
    )
    assert r.exit_code == 2
    assert "999" in r.output
    assert not (tmp_path / "x.keras").exists()


def test_retrain_reproduces_the_best_trial_and_reports_test_accuracy(
    trained: TrainedStudy, tmp_path: Path
) -> None:
    out = tmp_path / "retrained.keras"
    r = CliRunner().invoke(
        worker_retrain,
        [str(trained.study_id), "--out", str(out), "--threads", "1",
         "--database-url", trained.url],
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout[r.stdout.index("{"):])
    best = trained.services.best(trained.study_id)
    assert report["trial_number"] == best["number"]
    assert report["seed"] == best["user_attrs"]["seed"]
    assert report["dataset_fingerprint"] == best["user_attrs"]["dataset_fingerprint"]
    assert report["dataset_fingerprint_matches"] is True
    assert report["version_differences"] == {}
    assert 0.0 <= report["test_metrics"]["test_accuracy"] <= 1.0
    assert report["test_samples"] > 0
    # same seed, same split, same code path: the same validation accuracy
    assert report["retrained_values"][0] == pytest.approx(best["value"], abs=1e-6)
    model = keras.models.load_model(out)
    assert val_accuracy(model, trained) == pytest.approx(report["retrained_values"][0], abs=1e-6)


def test_retrain_refuses_data_that_differs_from_the_trials(
    trained: TrainedStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.retrain as retrain_mod

    real = retrain_mod.load_dataset

    def changed(*a: object, **kw: object):  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(*a, **kw), fingerprint="0" * 64)  # type: ignore[arg-type]

    monkeypatch.setattr(retrain_mod, "load_dataset", changed)
    r = CliRunner().invoke(
        worker_retrain, [str(trained.study_id), "--epochs", "1", "--database-url", trained.url]
    )
    assert r.exit_code == 2
    assert "differs" in r.output and "--allow-data-change" in r.output


def test_retrain_with_allowed_data_change_and_fewer_epochs(
    trained: TrainedStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.retrain as retrain_mod

    real = retrain_mod.load_dataset
    monkeypatch.setattr(
        retrain_mod, "load_dataset",
        lambda *a, **kw: dataclasses.replace(real(*a, **kw), fingerprint="0" * 64),
    )
    report = retrain_mod.retrain(
        trained.services, trained.study_id, epochs=1, allow_data_change=True
    )
    assert report["dataset_fingerprint_matches"] is False
    assert report["epochs"] == 1 and report["max_epochs"] == 1
    assert report["test_metrics"] is not None


def test_tuner_service_retrain_runs_the_worker_command(trained: TrainedStudy) -> None:
    """``tuner-service retrain`` hands its arguments to ``tuner-worker retrain`` (a process:
    the control plane never imports the data plane); its exit status and messages come back."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TUNER_DATABASE_URL": trained.url}
    cmd = [sys.executable, "-c", "from tuner_service.cli import main; main()"]
    r = subprocess.run([*cmd, "retrain", "999", "--epochs", "1"], env=env, capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 2, r.stderr
    assert "999" in r.stderr and "not found" in r.stderr
    r = subprocess.run([*cmd, "retrain", "--help"], env=env, capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0 and "--allow-data-change" in r.stdout
