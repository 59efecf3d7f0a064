"""The lease queue and the reaper, without training: exact budget, max_parallel, timeout, and
re-queueing the trials of silent workers (on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState
from support import make_settings, tiny_spec

from tuner_service.migrate import upgrade
from tuner_service.models import LeaseRow
from tuner_service.queue import claim, end_lease
from tuner_service.reaper import Reaper
from tuner_service.service import Services
from tuner_service.states import LeaseState


@pytest.fixture
def svc(db_url: str) -> Iterator[Services]:
    upgrade(db_url)
    s = Services(make_settings(db_url))
    for w in ("w1", "w2", "w3"):
        s.repo.register_worker(worker_id=w, host="h", pid=1, device="cpu", info={})
    yield s
    s.close()


def _ask(svc: Services, study_name: str, lease_id: int) -> optuna.Trial:
    study = optuna.load_study(study_name=study_name, storage=svc.storage)
    trial = study.ask()
    svc.repo.attach_trial(lease_id, trial_id=trial._trial_id, trial_number=trial.number)
    trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True)
    return trial


def test_claims_respect_max_parallel_and_exact_budget(svc: Services) -> None:
    spec = tiny_spec("budget", budget={"n_trials": 3, "max_epochs": 1, "max_parallel": 2})
    row = svc.create_study(spec)
    c1, c2 = claim(svc.repo, "w1"), claim(svc.repo, "w2")
    assert c1 and c2 and c1.lease.id != c2.lease.id
    assert claim(svc.repo, "w3") is None  # max_parallel reached
    assert end_lease(svc.repo, c1.lease, LeaseState.FINISHED)
    c3 = claim(svc.repo, "w3")
    assert c3 is not None
    end_lease(svc.repo, c2.lease, LeaseState.FINISHED)
    assert claim(svc.repo, "w1") is None  # budget: 3 handed out
    end_lease(svc.repo, c3.lease, LeaseState.FINISHED)
    with svc.repo.session() as s:
        counts = [le.active_at_claim for le in s.query(LeaseRow).order_by(LeaseRow.id)]
    assert counts == [1, 2, 2]  # active leases of the study, each claim included
    detail = svc.study_detail(row.id)
    assert detail["status"] == "completed"
    assert detail["evaluation_state"] == "pending"
    assert detail["budget"]["finished"] == 3


def test_a_worker_asking_again_gets_its_own_pending_lease(svc: Services) -> None:
    svc.create_study(tiny_spec("again", budget={"n_trials": 5, "max_parallel": 5}))
    first = claim(svc.repo, "w1")
    again = claim(svc.repo, "w1")
    assert first and again and first.lease.id == again.lease.id


def test_timeout_stops_handing_out_and_completes(svc: Services) -> None:
    row = svc.create_study(tiny_spec("timeout", budget={"n_trials": 50, "timeout_s": 0.3}))
    c = claim(svc.repo, "w1")
    assert c is not None
    time.sleep(0.5)
    assert claim(svc.repo, "w2") is None
    end_lease(svc.repo, c.lease, LeaseState.FINISHED)
    d = svc.study_detail(row.id)
    assert d["status"] == "completed" and d["status_reason"] == "timeout reached"


def test_reaper_requeues_a_silent_workers_trial_with_the_same_params(svc: Services) -> None:
    row = svc.create_study(tiny_spec("reap", budget={"n_trials": 2, "max_parallel": 2}))
    c = claim(svc.repo, "w1")
    assert c is not None
    trial = _ask(svc, row.name, c.lease.id)
    lr = trial.params["learning_rate"]
    reaper = Reaper(svc.repo, svc.storage, grace_period=1.0, max_retries=2, settle_s=0.0)
    svc.repo.heartbeat("w1")
    assert reaper.run_once() == 0  # w1 is fresh
    time.sleep(1.3)
    for w in ("w2", "w3"):
        svc.repo.heartbeat(w)
    assert reaper.run_once() == 1
    assert reaper.run_once() == 0  # idempotent
    trials, _ = svc.list_trials(row.id)
    assert trials[0]["state"] == "fail"
    assert "worker lost" in trials[0]["fail_reason"]
    assert trials[1]["state"] == "waiting"
    assert trials[1]["retry_of"] == 0 and trials[1]["retry_count"] == 1
    assert svc.repo.lease_counts(row.id).lost == 1
    # the re-queued trial is handed out next, with the same parameters
    c2 = claim(svc.repo, "w2")
    assert c2 is not None
    again = _ask(svc, row.name, c2.lease.id)
    assert again.number == 1 and again.params["learning_rate"] == lr
    retried = svc.storage.get_trial(again._trial_id)
    assert optuna.storages.RetryFailedTrialCallback.retried_trial_number(retried) == 0
    workers = {w["id"]: w["status"] for w in svc.workers(include_stopped=True)}
    assert workers["w1"] == "dead"


def test_reaper_gives_up_after_max_retries_and_counts_it(svc: Services) -> None:
    row = svc.create_study(tiny_spec("giveup", budget={"n_trials": 1, "max_parallel": 1}))
    reaper = Reaper(svc.repo, svc.storage, grace_period=0.2, max_retries=1, settle_s=0.0)
    for attempt in range(2):
        worker = f"x{attempt}"
        svc.repo.register_worker(worker_id=worker, host="h", pid=1, device="cpu", info={})
        c = claim(svc.repo, worker)
        assert c is not None
        _ask(svc, row.name, c.lease.id)
        time.sleep(0.4)
        assert reaper.run_once() == 1
    trials, _ = svc.list_trials(row.id)
    assert [t["state"] for t in trials] == ["fail", "fail"]
    assert "gave up after 1 retries" in trials[1]["fail_reason"]
    d = svc.study_detail(row.id)
    assert d["status"] == "completed"  # the failed-for-good trial used the budget
    assert d["budget"]["finished"] == 1


def test_reaper_fails_orphaned_running_trials(svc: Services) -> None:
    row = svc.create_study(tiny_spec("orphan", budget={"n_trials": 3, "max_parallel": 3}))
    study = optuna.load_study(study_name=row.name, storage=svc.storage)
    trial = study.ask()  # a worker died between ask and recording its lease
    trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True)
    patient = Reaper(svc.repo, svc.storage, grace_period=60.0, max_retries=2, settle_s=0.0)
    assert patient.run_once() == 0  # too young to call orphaned
    reaper = Reaper(svc.repo, svc.storage, grace_period=0.2, max_retries=2, settle_s=0.0)
    assert reaper.run_once() == 0  # first seen unheld now (Optuna's start time is not trusted)
    time.sleep(0.4)
    assert reaper.run_once() == 1
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]


def test_a_lease_taken_back_cannot_be_attached_later(svc: Services) -> None:
    from tuner_service.errors import LeaseLostError

    svc.create_study(tiny_spec("late", budget={"n_trials": 2, "max_parallel": 2}))
    c = claim(svc.repo, "w1")
    assert c is not None
    assert end_lease(svc.repo, c.lease, LeaseState.LOST, reason="reaped")
    before = svc.repo.get_lease(c.lease.id)
    with pytest.raises(LeaseLostError):
        svc.repo.attach_trial(c.lease.id, trial_id=1, trial_number=0)
    after = svc.repo.get_lease(c.lease.id)
    assert after == before and after is not None and after.trial_id is None


def _counters_match_rows(svc: Services) -> list[tuple[int, tuple[int, int, int]]]:
    """Every study's lease counters (migration 0007) against a count of its lease rows."""
    import sqlalchemy as sa

    from tuner_service.models import StudyRow

    with svc.repo.session() as s:
        counted = {
            (sid, st): int(n)
            for sid, st, n in s.execute(
                sa.select(LeaseRow.study_id, LeaseRow.state, sa.func.count()).group_by(
                    LeaseRow.study_id, LeaseRow.state
                )
            )
        }
        out = []
        for row in s.scalars(sa.select(StudyRow).order_by(StudyRow.id)):
            kept = (row.leases_active, row.leases_finished, row.leases_lost)
            rows = tuple(counted.get((row.id, st), 0) for st in ("active", "finished", "lost"))
            assert kept == rows, f"study {row.id}: counters {kept} != rows {rows}"
            out.append((row.id, kept))
        return out


def test_lease_counters_follow_every_lease_change(svc: Services) -> None:
    """Claim, finish, lose (reaper), fail for good (lost counted as finished), drop an
    unattached lease, close the budget: after each, the study row's counters equal a count of
    its lease rows, and the summary reads them."""
    row = svc.create_study(tiny_spec("counters", budget={"n_trials": 4, "max_parallel": 3}))
    c1, c2, c3 = claim(svc.repo, "w1"), claim(svc.repo, "w2"), claim(svc.repo, "w3")
    assert c1 and c2 and c3
    assert _counters_match_rows(svc) == [(row.id, (3, 0, 0))]
    assert end_lease(svc.repo, c1.lease, LeaseState.FINISHED)
    assert not end_lease(svc.repo, c1.lease, LeaseState.FINISHED)  # already ended: no change
    assert _counters_match_rows(svc) == [(row.id, (2, 1, 0))]
    assert svc.repo.drop_unattached_lease(c3.lease.id)
    assert _counters_match_rows(svc) == [(row.id, (1, 1, 0))]
    _ask(svc, row.name, c2.lease.id)
    reaper = Reaper(svc.repo, svc.storage, grace_period=0.2, max_retries=0, settle_s=0.0)
    time.sleep(0.4)
    assert reaper.run_once() == 1  # w2 silent: lost, and with no retries left counted finished
    assert _counters_match_rows(svc) == [(row.id, (0, 2, 0))]
    svc.repo.register_worker(worker_id="w4", host="h", pid=1, device="cpu", info={})
    c4 = claim(svc.repo, "w4")
    assert c4 is not None
    assert svc.repo.close_budget(row.id, reason="search over") == 3
    assert end_lease(svc.repo, c4.lease, LeaseState.FINISHED)
    assert _counters_match_rows(svc) == [(row.id, (0, 3, 0))]
    detail = svc.study_detail(row.id)
    assert detail["status"] == "completed" and detail["status_reason"] == "search over"
    assert (detail["budget"]["handed_out"], detail["budget"]["finished"]) == (3, 3)


def test_migration_0007_fills_the_counters_from_the_lease_rows(
    svc: Services, db_url: str
) -> None:
    from alembic import command

    from tuner_service import migrate
    from tuner_service.db import create_db_engine

    row = svc.create_study(tiny_spec("backfill", budget={"n_trials": 5, "max_parallel": 3}))
    c1, c2 = claim(svc.repo, "w1"), claim(svc.repo, "w2")
    assert c1 and c2
    end_lease(svc.repo, c1.lease, LeaseState.FINISHED)
    end_lease(svc.repo, c2.lease, LeaseState.LOST)
    assert claim(svc.repo, "w3") is not None
    engine = create_db_engine(db_url)
    cfg = migrate._config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    assert _counters_match_rows(svc) == [(row.id, (1, 1, 1))]


def test_attach_sets_the_trials_worker_attribute_in_the_same_transaction(svc: Services) -> None:
    """The lease's trial and the trial's ``worker`` user attribute are written together; Optuna
    (and optuna-dashboard through it) reads the attribute like one it set itself, a retried
    attach leaves one row, and Optuna can still change it."""
    row = svc.create_study(tiny_spec("attach-attr", budget={"n_trials": 2, "max_parallel": 1}))
    c = claim(svc.repo, "w1")
    assert c is not None
    study = optuna.load_study(study_name=row.name, storage=svc.storage)
    trial = study.ask()
    for _ in range(2):  # the second call is what a retry after a lost commit does
        svc.repo.attach_trial(
            c.lease.id, trial_id=trial._trial_id, trial_number=trial.number,
            user_attr=("worker", "w1"),
        )
    fresh = optuna.load_study(study_name=row.name, storage=svc.storage)
    assert fresh.trials[0].user_attrs == {"worker": "w1"}
    trial.set_user_attr("worker", "w1b")
    study.tell(trial, 0.5)
    assert optuna.load_study(study_name=row.name, storage=svc.storage).trials[0].user_attrs == {
        "worker": "w1b"
    }
    assert svc.list_trials(row.id)[0][0]["worker"] == "w1b"
