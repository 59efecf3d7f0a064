"""GET /metrics: Prometheus text computed from the database at scrape time (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import optuna
import pytest
from fastapi.testclient import TestClient
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState
from prometheus_client.parser import text_string_to_metric_families
from support import make_settings, tiny_spec

from tuner_service.api.app import create_app
from tuner_service.migrate import upgrade
from tuner_service.queue import claim
from tuner_service.service import Services
from tuner_service.states import LeaseState, WorkerStatus


@pytest.fixture
def app_services(db_url: str) -> Iterator[tuple[TestClient, Services]]:
    upgrade(db_url)
    app = create_app(make_settings(db_url), run_reaper=False)
    with TestClient(app) as c:
        yield c, app.state.services


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def finished_trial(seconds: float, state: TrialState = TrialState.COMPLETE) -> FrozenTrial:
    start = datetime(2024, 1, 1, 12, 0, 0)
    return FrozenTrial(
        number=0, trial_id=0, state=state,
        value=0.5 if state == TrialState.COMPLETE else None, values=None,
        datetime_start=start, datetime_complete=start + timedelta(seconds=seconds),
        params={"learning_rate": 0.01},
        distributions={"learning_rate": FloatDistribution(1e-4, 1e-1, log=True)},
        user_attrs={}, system_attrs={}, intermediate_values={0: 0.4},
    )


def test_metrics_report_studies_trials_durations_workers_and_waiting_work(
    app_services: tuple[TestClient, Services],
) -> None:
    client, services = app_services
    m = scrape(client)
    assert m[("tuner_database_up", ())] == 1.0
    assert m[("tuner_studies", (("status", "queued"),))] == 0.0
    assert m[("tuner_trials_waiting_to_be_claimed", ())] == 0.0
    assert m[("tuner_trial_duration_seconds_count", ())] == 0.0

    queued = services.create_study(tiny_spec("queued", budget={"n_trials": 3}))
    running = services.create_study(tiny_spec("running", budget={"n_trials": 5}))
    paused = services.create_study(tiny_spec("paused", budget={"n_trials": 4}))
    services.pause(paused.id)
    repo = services.repo
    for wid in ("w1", "w2"):
        repo.register_worker(worker_id=wid, host="h", pid=1, device="cpu", info={})
    repo.set_worker_status("w2", WorkerStatus.STOPPED)
    # "queued" gets a lease (it becomes running), which is then lost (its trial re-queued)
    c = claim(repo, "w1")
    assert c is not None and c.study.id == queued.id  # the oldest study first
    repo.end_lease(c.lease.id, LeaseState.LOST)
    # trials of "running" (still queued by status: no lease yet) straight into Optuna
    study = services.optuna_study(running)
    study.add_trial(finished_trial(3.0))
    study.add_trial(finished_trial(90.0, TrialState.PRUNED))
    running_trial = study.ask()
    assert running_trial is not None
    study.enqueue_trial({"learning_rate": 0.02})  # a warm start: WAITING
    # a study made with plain Optuna in the same storage is not the service's: not counted
    other = optuna.create_study(study_name="not-ours", storage=services.storage)
    other.add_trial(finished_trial(1.0))

    m = scrape(client)
    assert m[("tuner_studies", (("status", "queued"),))] == 1.0  # "running" not claimed yet
    assert m[("tuner_studies", (("status", "running"),))] == 1.0  # "queued", claimed above
    assert m[("tuner_studies", (("status", "paused"),))] == 1.0
    assert m[("tuner_studies", (("status", "completed"),))] == 0.0
    assert m[("tuner_trials", (("state", "complete"),))] == 1.0
    assert m[("tuner_trials", (("state", "pruned"),))] == 1.0
    assert m[("tuner_trials", (("state", "waiting"),))] == 1.0
    assert m[("tuner_trials", (("state", "running"),))] == 1.0
    assert m[("tuner_trials", (("state", "fail"),))] == 0.0
    assert m[("tuner_trial_duration_seconds_count", ())] == 2.0
    assert m[("tuner_trial_duration_seconds_sum", ())] == pytest.approx(93.0)
    assert m[("tuner_trial_duration_seconds_bucket", (("le", "5.0"),))] == 1.0
    assert m[("tuner_trial_duration_seconds_bucket", (("le", "60.0"),))] == 1.0
    assert m[("tuner_trial_duration_seconds_bucket", (("le", "120.0"),))] == 2.0
    assert m[("tuner_trial_duration_seconds_bucket", (("le", "+Inf"),))] == 2.0
    assert m[("tuner_workers_alive", ())] == 1.0
    # queued (3, its lost lease does not count) + running (5); the paused study hands out none
    assert m[("tuner_trials_waiting_to_be_claimed", ())] == 8.0

    c2 = claim(repo, "w1")
    assert c2 is not None
    m = scrape(client)
    assert m[("tuner_trials_waiting_to_be_claimed", ())] == 7.0


def test_metrics_say_when_the_database_is_down(sqlite_url: str, tmp_path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path}/missing/dir/x.db"), run_reaper=False)
    with TestClient(app) as client:
        r = client.get("/metrics")
    assert r.status_code == 200
    assert "tuner_database_up 0.0" in r.text


def test_duration_buckets_are_cumulative_and_inclusive(
    app_services: tuple[TestClient, Services],
) -> None:
    """The database computes the histogram: a bucket counts trials at most its bound long."""
    client, services = app_services
    row = services.create_study(tiny_spec("durations"))
    study = services.optuna_study(row)
    study.add_trial(finished_trial(0.5, TrialState.FAIL))
    running = study.ask()  # seen unfinished by the first scrape, finished before the second
    assert scrape(client)[("tuner_trial_duration_seconds_count", ())] == 1.0
    study.tell(running, 0.5)
    for seconds in (1.0, 7.0, 10_000_000.0):
        study.add_trial(finished_trial(seconds, TrialState.FAIL))
    m = scrape(client)
    told = study.trials[running.number]  # its length is whatever the database recorded
    assert told.datetime_start and told.datetime_complete
    d = (told.datetime_complete - told.datetime_start).total_seconds()
    durations = [0.5, d, 1.0, 7.0, 10_000_000.0]
    got = {
        dict(labels)["le"]: v
        for (name, labels), v in m.items()
        if name == "tuner_trial_duration_seconds_bucket"
    }
    expected = {f"{b:.1f}": float(sum(x <= b for x in durations)) for b in (1, 5, 15, 86400)}
    assert {k: got[k] for k in (*expected, "+Inf")} == {**expected, "+Inf": 5.0}
    assert m[("tuner_trial_duration_seconds_sum", ())] == pytest.approx(sum(durations))


def test_metrics_follow_protect_reads(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    app = create_app(
        make_settings(sqlite_url, api_token="s3cret", protect_reads=True), run_reaper=False
    )
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        r = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200
