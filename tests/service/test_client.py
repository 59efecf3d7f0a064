"""The Python client against the real API (uvicorn in a thread, SQLite), no worker: submit,
list, pages, warm starts, pause/resume/cancel, waiting, and errors with their problems."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import api_in_thread, make_settings, tiny_spec

from tuner_service.api.app import create_app
from tuner_service.api.schemas import StudyDetail, StudyPublic, TrialPublic
from tuner_service.client import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    TunerClient,
    ValidationError,
)
from tuner_service.migrate import upgrade
from tuner_service.spec import StudySpec

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('client') / 'tuner.db'}"
    upgrade(url)
    app = create_app(make_settings(url, api_token=TOKEN), run_reaper=False)
    with api_in_thread(app) as base:
        yield base


@pytest.fixture
def client(base_url: str) -> Iterator[TunerClient]:
    with TunerClient(base_url, token=TOKEN) as c:
        yield c


def test_submit_a_dict_a_spec_model_a_json_and_a_yaml_file(
    client: TunerClient, tmp_path: Path
) -> None:
    as_dict = client.submit(tiny_spec("c-dict"))
    as_model = client.submit(StudySpec.model_validate(tiny_spec("c-model")))
    (tmp_path / "s.json").write_text(json.dumps(tiny_spec("c-json")))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_spec("c-yaml")))
    from_json = client.submit(tmp_path / "s.json")
    from_yaml = client.submit(str(tmp_path / "s.yaml"))
    for study, name in ((as_dict, "c-dict"), (as_model, "c-model"), (from_json, "c-json"),
                        (from_yaml, "c-yaml")):
        assert isinstance(study.detail, StudyDetail)
        assert (study.name, study.status) == (name, "queued")
        assert study.detail.spec["name"] == name
        assert client.study(study.id).name == name


def test_invalid_spec_raises_with_every_problem_and_its_path(client: TunerClient) -> None:
    spec = tiny_spec("c-bad")
    spec["budget"] = {"n_trials": 0}
    spec["search_space"] = {"learning_rat": {"type": "float", "low": 1e-3, "high": 1e-1}}
    with pytest.raises(ValidationError) as err:
        client.submit(spec)
    assert err.value.status_code == 422
    locs = [tuple(p["loc"]) for p in err.value.problems]
    assert ("body", "budget", "n_trials") in locs
    assert ("body", "search_space", "learning_rat") in locs
    assert "search_space.learning_rat" in str(err.value)  # the message names the fields


def test_duplicate_name_and_unknown_study(client: TunerClient) -> None:
    client.submit(tiny_spec("c-dup"))
    with pytest.raises(ConflictError, match="c-dup"):
        client.submit(tiny_spec("c-dup"))
    with pytest.raises(NotFoundError) as err:
        client.study(987654)
    assert err.value.status_code == 404


def test_writes_need_the_token(base_url: str) -> None:
    with TunerClient(base_url) as anonymous:
        assert anonymous.studies()  # reads are open
        with pytest.raises(AuthenticationError):
            anonymous.submit(tiny_spec("c-anon"))


def test_studies_reads_every_page_and_filters(client: TunerClient) -> None:
    for i in range(5):
        client.submit(tiny_spec(f"c-page-{i}"))
    everything = client.studies()
    paged = client.studies(page_size=2)
    assert all(isinstance(s, StudyPublic) for s in paged)
    assert [s.id for s in paged] == [s.id for s in everything]
    assert {f"c-page-{i}" for i in range(5)} <= {s.name for s in paged}
    assert len({s.id for s in paged}) == len(paged)
    assert all(s.status == "queued" for s in client.studies(status="queued"))


def test_enqueue_then_trials_page_by_page_and_as_a_dataframe(client: TunerClient) -> None:
    study = client.submit(tiny_spec("c-enqueue", budget={"n_trials": 5, "max_epochs": 2}))
    rates = [0.001, 0.002, 0.004]
    for lr in rates:
        assert "queued" in study.enqueue({"learning_rate": lr, "filters": 4, "dense_units": 8})
    with pytest.raises(ValidationError) as err:
        study.enqueue({"learning_rate": 5.0})
    assert err.value.problems and "learning_rate" in str(err.value)
    trials = list(study.trials(page_size=2))
    assert all(isinstance(t, TrialPublic) for t in trials)
    assert [t.number for t in trials] == [0, 1, 2]  # pages of 2, in order, none twice
    assert {t.state for t in study.trials(state="waiting")} == {"waiting"}
    assert list(study.trials(state="complete")) == []
    df = study.trials_dataframe()
    assert len(df) == 3
    assert list(df["number"]) == [0, 1, 2]
    assert set(df["state"]) == {"waiting"}
    with pytest.raises(NotFoundError):
        study.best()  # nothing finished
    with pytest.raises(NotFoundError):
        study.download_model()


def test_pause_resume_cancel_and_refused_moves(client: TunerClient) -> None:
    study = client.submit(tiny_spec("c-moves"))
    assert study.pause().status == "paused"
    assert study.status == "paused"  # refreshed
    assert study.resume().status == "queued"
    assert study.cancel().status == "cancelled"
    with pytest.raises(ConflictError):
        study.resume()
    with pytest.raises(ConflictError):
        study.enqueue({"learning_rate": 0.01})


def test_wait_polls_until_the_study_ends(
    client: TunerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    study = client.submit(tiny_spec("c-wait"))
    with pytest.raises(TimeoutError):
        study.wait(progress=False, interval=0.05, timeout=0.2)
    canceller = threading.Timer(0.5, lambda: client.study(study.id).cancel())
    canceller.start()
    try:
        detail = study.wait(progress=True, interval=0.1, timeout=60)
    finally:
        canceller.cancel()
    assert detail.status == "cancelled"
    assert study.is_done()
    assert "c-wait" in capsys.readouterr().out  # the progress bar was drawn


def test_ensemble_calls_before_the_study_has_one(client: TunerClient) -> None:
    study = client.submit(tiny_spec("c-ensemble"))
    assert study.ensemble() is None  # not completed: nothing built yet
    with pytest.raises(NotFoundError, match="has no ensemble"):
        study.download_ensemble()
    with pytest.raises(ConflictError, match="once it has completed"):
        study.build_ensemble(size=3, method="greedy")
    with pytest.raises(ValidationError) as bad:
        study.build_ensemble(size=0, method="vote")
    assert {tuple(p["loc"]) for p in bad.value.problems} == {("body", "size"), ("body", "method")}
