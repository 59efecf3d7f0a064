"""On a study the service's worker trained and evaluated: the final evaluation's per-class
results agree with its test accuracy, the Python client reads everything through the real API
(uvicorn in a thread), and the report shows the confusion matrix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from ops_support import TrainedStudy
from support import api_in_thread

from tuner_service import ensembles
from tuner_service.api.app import create_app
from tuner_service.client import EnsembleInfo, NotFoundError, TunerClient
from tuner_service.optuna_bridge import STUDY_ATTR_TEST_CLASSES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(trained: TrainedStudy) -> Iterator[TunerClient]:
    app = create_app(trained.services.settings, run_reaper=False)
    with api_in_thread(app) as base, TunerClient(base) as c:
        yield c


def test_final_evaluation_records_per_class_results_that_agree_with_test_accuracy(
    trained: TrainedStudy,
) -> None:
    detail = trained.services.study_detail(trained.study_id)
    ev = detail["evaluation"]
    study = optuna.load_study(study_name=trained.name, storage=trained.services.storage)
    pc = study.user_attrs[STUDY_ATTR_TEST_CLASSES]
    assert pc["trial_number"] == ev["trial_number"]
    n = 3  # tiny_spec's classes
    assert pc["labels"] == list(range(n))
    matrix = pc["confusion_matrix"]
    assert len(matrix) == n and all(len(row) == n for row in matrix)
    total = sum(map(sum, matrix))
    assert total == ev["test_samples"] == sum(pc["support"])
    correct = sum(matrix[i][i] for i in range(n))
    assert correct / total == pytest.approx(ev["test_metrics"]["test_accuracy"], abs=1e-6)
    for i in range(n):
        predicted_i = sum(row[i] for row in matrix)
        assert pc["support"][i] == sum(matrix[i])
        assert pc["recall"][i] == pytest.approx(matrix[i][i] / pc["support"][i])
        want = matrix[i][i] / predicted_i if predicted_i else 0.0
        assert pc["precision"][i] == pytest.approx(want)


def test_client_reads_the_trained_study(
    trained: TrainedStudy, client: TunerClient, tmp_path: Path
) -> None:
    assert trained.name in {s.name for s in client.studies(status="completed")}
    study = client.study(trained.study_id)
    assert study.wait(progress=False, timeout=5).status == "completed"  # done already
    trials = list(study.trials(page_size=1))
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state == "complete" and len(t.intermediate_values) == 3 for t in trials)
    best = study.best()
    assert best.model_extra is not None
    assert best.model_extra["number"] == study.detail.best_trial.number  # type: ignore[union-attr]
    assert best.model_extra["test_metrics"]["test_accuracy"] > 0
    path = study.download_model(tmp_path)
    assert path.name == f"study{trained.study_id}-trial{best.model_extra['number']}.keras"
    assert path.read_bytes() == trained.services.best_model(trained.study_id)[1]
    df = study.trials_dataframe()
    assert list(df["number"]) == [0, 1]
    assert {"value", "params_learning_rate", "params_filters", "duration_s"} <= set(df.columns)
    assert df["value"].max() == pytest.approx(best.model_extra["value"])
    with pytest.raises(NotFoundError):
        client.study(trained.study_id + 1000).best()


def test_client_reads_downloads_and_rebuilds_the_ensemble(
    trained: TrainedStudy, client: TunerClient, tmp_path: Path
) -> None:
    from workers.worker import Worker, WorkerOptions

    study = client.study(trained.study_id)
    ens = study.ensemble()
    assert isinstance(ens, EnsembleInfo) and ens.built
    assert ens.method == "weighted" and set(ens.members) <= {0, 1}
    assert sum(ens.weights) == pytest.approx(1.0)
    assert ens.best_trial_number == study.detail.best_trial.number  # type: ignore[union-attr]
    assert ens.test is not None and 0.0 <= ens.test.ensemble["accuracy"] <= 1.0
    path = study.download_ensemble(tmp_path)
    assert path.name == f"study{trained.study_id}-ensemble.keras"
    assert path.read_bytes() == ensembles.ensemble_model(trained.services, trained.study_id)[1]

    # again, another way: a worker builds it at its next poll (it stays the study's ensemble)
    assert study.build_ensemble(size=1, method="mean") == "pending"
    assert study.ensemble() is not None  # the previous record stays until the rebuild
    Worker(trained.services, WorkerOptions(exit_when_idle=0.5)).run()
    study.wait(progress=False, timeout=5)
    again = study.ensemble()
    assert again is not None and again.method == "mean" and again.size == 1
    assert again.members == [ens.best_trial_number] and again.weights == [1.0]


def test_report_of_the_trained_study_shows_its_confusion_matrix(
    trained: TrainedStudy, client: TunerClient, tmp_path: Path
) -> None:
    path = client.study(trained.study_id).download_report(tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert 'id="per-class"' in page and 'id="confusion"' in page
    assert "test_accuracy" in page
    assert "Not drawn" not in page.split('<section id="importances">')[0]
    assert "Ensemble vs best trial" in page
