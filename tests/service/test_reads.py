"""Reads in O(page) (tuner_service/reads.py) give what a full ``study.get_trials()`` gives:
state counts, totals, best trial(s), pages of every state and the page's workers, on a study
with trials in every state, three workers, retries, a warm start, infinite and NaN values;
single- and multi-objective; on SQLite and PostgreSQL. After migration 0004 (indexes on
Optuna's ``trials`` table) ``optuna.load_study`` and optuna-dashboard still read the database."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import optuna
import optuna_dashboard
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState
from support import make_settings, tiny_spec

from tuner_service.migrate import upgrade
from tuner_service.optuna_bridge import (
    ATTR_DEVICE_SECONDS,
    ATTR_FAIL_REASON,
    ATTR_WALL_TIME,
    ATTR_WORKER,
    requeue_trial,
    trial_to_dict,
)
from tuner_service.queue import claim, end_lease
from tuner_service.service import Services
from tuner_service.states import LeaseState

WORKERS = ("w1", "w2", "w3")
# outcome of each claimed trial, in order (value from the trial's index)
PLAN = [
    "complete", "pruned", "fail", "complete", "retry", "complete", "running", "complete",
    "fail", "complete", "retry", "pruned", "complete_inf", "complete", "running",
]


@pytest.fixture
def svc(db_url: str) -> Iterator[Services]:
    upgrade(db_url)
    s = Services(make_settings(db_url))
    for w in WORKERS:
        s.repo.register_worker(worker_id=w, host="h", pid=1, device="cpu", info={})
    yield s
    s.close()


def _populate(svc: Services, spec: dict[str, Any], *, n_objectives: int) -> int:
    """Run PLAN through the real claim/lease path (no training); returns the study id."""
    row = svc.create_study(spec)
    study = optuna.load_study(study_name=row.name, storage=svc.storage)
    for i, outcome in enumerate(PLAN):
        worker = WORKERS[i % len(WORKERS)]
        c = claim(svc.repo, worker)
        assert c is not None, i
        trial = study.ask()
        svc.repo.attach_trial(c.lease.id, trial_id=trial._trial_id, trial_number=trial.number)
        trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True)
        trial.suggest_categorical("filters", [4, 8])
        if i % 4:  # some trials leave the worker to the lease rows only
            trial.set_user_attr(ATTR_WORKER, worker)
        if n_objectives == 1:
            for step in range(3):
                trial.report(math.nan if (i, step) == (3, 1) else 0.1 * step + 0.01 * i, step)
        trial.set_user_attr(ATTR_WALL_TIME, 1.5 * i + 0.25)
        trial.set_user_attr(ATTR_DEVICE_SECONDS, 0.5 * i)
        trial.set_user_attr("history", {"val_accuracy": [0.1, 0.2 + i / 100]})
        svc.study_detail(row.id)  # the finished prefix of this process grows as trials end
        if outcome == "running":
            continue
        values: Any = None
        if outcome.startswith("complete"):
            v = math.inf if outcome == "complete_inf" else 0.3 + ((i * 7) % 11) / 100
            values = v if n_objectives == 1 else [v, float(100 - (i * 13) % 17)]
            state = TrialState.COMPLETE
        elif outcome == "pruned":
            state = TrialState.PRUNED if n_objectives == 1 else TrialState.FAIL
        else:
            trial.set_user_attr(ATTR_FAIL_REASON, "boom")
            state = TrialState.FAIL
        study.tell(trial, values, state=state)
        if outcome == "retry":  # what the reaper does for a lost trial
            end_lease(svc.repo, c.lease, LeaseState.LOST, reason="lost")
            requeue_trial(study, study.trials[trial.number], max_retries=3, reads=svc.reads)
        else:
            end_lease(svc.repo, c.lease, LeaseState.FINISHED)
    # a warm start stays WAITING (re-queued copies were taken by the next asks)
    svc.enqueue_trial(row.id, {"learning_rate": 0.01, "filters": 8, "dense_units": 16})
    return row.id


def _expected_page(
    svc: Services, study_id: int, state: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """What the service returned before reads.py: every trial loaded, the page cut in Python."""
    row = svc.study_row(study_id)
    states = None if state is None else (TrialState[state.upper()],)
    trials = svc.optuna_study(row).get_trials(deepcopy=False, states=states)
    workers = svc.repo.trial_workers(row.id)
    out = []
    for t in trials[offset : offset + limit]:
        d = trial_to_dict(t)
        d["worker"] = d["worker"] or workers.get(t.number)
        out.append(d)
    return out, len(trials)


def _check_everything(svc: Services, study_id: int) -> None:
    row = svc.study_row(study_id)
    study = svc.optuna_study(row)
    trials = study.get_trials(deepcopy=False)
    detail = svc.study_detail(study_id)

    expected_counts = {s.name.lower(): 0 for s in TrialState}
    expected_counts.update(Counter(t.state.name.lower() for t in trials))
    assert detail["trial_counts"] == expected_counts
    assert all(expected_counts[s] for s in ("running", "waiting", "complete", "fail"))
    wall = sum(t.user_attrs.get(ATTR_WALL_TIME, 0.0) for t in trials)
    device = sum(t.user_attrs.get(ATTR_DEVICE_SECONDS, 0.0) for t in trials)
    assert detail["total_trial_seconds"] == pytest.approx(wall)
    assert detail["total_device_seconds"] == pytest.approx(device)
    assert detail["directions"] == [d.name.lower() for d in study.directions]
    assert detail["budget"]["retried"] == 2

    best = svc.best(study_id)
    if len(study.directions) == 1:
        assert detail["best_trial"]["number"] == study.best_trial.number
        assert detail["best_trial"]["params"] == study.best_trial.params
        assert best["number"] == study.best_trial.number
        assert best == {**best, **trial_to_dict(study.best_trial)}
    else:
        front = sorted(t.number for t in study.best_trials)
        assert len(front) > 1
        assert [t["number"] for t in detail["best_trials"]] == front
        assert [t["number"] for t in best["trials"]] == front
        pairs = zip(best["trials"], front, strict=True)
        assert best["trials"] == [{**b, **trial_to_dict(study.trials[n])} for b, n in pairs]

    n = len(trials)
    for state in (None, "complete", "pruned", "fail", "running", "waiting"):
        for limit, offset in ((5, 0), (5, 5), (1000, 0), (3, n - 2), (10, n + 5)):
            got = svc.list_trials(study_id, state=state, limit=limit, offset=offset)
            assert got == _expected_page(svc, study_id, state, limit, offset), (state, offset)
    page, count = svc.list_trials(study_id, limit=1000)
    assert count == n
    assert {d["worker"] for d in page if d["state"] != "waiting"} == set(WORKERS)
    assert any(d["retry_count"] for d in page) and any(d["warm_start"] for d in page)


def test_reads_equal_full_scan_single_objective(svc: Services) -> None:
    spec = tiny_spec("reads-single", budget={"n_trials": 40, "max_epochs": 3, "max_parallel": 9})
    _check_everything(svc, _populate(svc, spec, n_objectives=1))


def test_reads_equal_full_scan_multi_objective(svc: Services) -> None:
    spec = tiny_spec(
        "reads-multi",
        objective=[
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "params", "direction": "minimize"},
        ],
        engine={"kind": "optuna", "sampler": "nsga2", "pruner": "none"},
        budget={"n_trials": 40, "max_epochs": 3, "max_parallel": 9},
    )
    _check_everything(svc, _populate(svc, spec, n_objectives=2))


def test_cached_prefix_equals_a_fresh_read(svc: Services) -> None:
    spec = tiny_spec("reads-fresh", budget={"n_trials": 40, "max_epochs": 3, "max_parallel": 9})
    study_id = _populate(svc, spec, n_objectives=1)
    cached = svc.study_detail(study_id)
    fresh = Services(svc.settings)
    try:
        assert fresh.study_detail(study_id) == cached
        # trials this process saw running finish, the waiting one starts: the counts kept
        # from the cached prefix follow, as a fresh read does
        study = svc.optuna_study(svc.study_row(study_id))
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            study.tell(t.number, 0.99)
        study.ask()
        later = svc.study_detail(study_id)
        assert later["trial_counts"]["running"] == 1 and later["trial_counts"]["waiting"] == 0
        assert later["trial_counts"]["complete"] == cached["trial_counts"]["complete"] + 2
        assert later["best_trial"]["number"] == study.best_trial.number
        again = Services(svc.settings)
        try:
            assert again.study_detail(study_id) == later
        finally:
            again.close()
    finally:
        fresh.close()


def test_empty_study_reads(svc: Services) -> None:
    row = svc.create_study(tiny_spec("reads-empty"))
    detail = svc.study_detail(row.id)
    assert set(detail["trial_counts"].values()) == {0}
    assert detail["best_trial"] is None and detail["best_trials"] is None
    assert detail["total_trial_seconds"] == 0.0
    assert svc.list_trials(row.id) == ([], 0)


def test_optuna_and_dashboard_read_the_migrated_database(svc: Services, db_url: str) -> None:
    spec = tiny_spec("reads-compat", budget={"n_trials": 40, "max_epochs": 3, "max_parallel": 9})
    study_id = _populate(svc, spec, n_objectives=1)
    names = {ix["name"] for ix in sa.inspect(svc.engine).get_indexes("trials")}
    assert {"ix_trials_study_id_number", "ix_trials_study_id_state_number"} <= names

    loaded = optuna.load_study(study_name="reads-compat", storage=db_url)
    assert len(loaded.trials) == len(PLAN) + 1  # + the warm start
    assert loaded.best_trial.number == svc.study_detail(study_id)["best_trial"]["number"]

    app = optuna_dashboard.wsgi(optuna.storages.RDBStorage(db_url))
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://dash") as client:
        summaries = client.get("/api/studies").json()["study_summaries"]
        (summary,) = [s for s in summaries if s["study_name"] == "reads-compat"]
        detail = client.get(f"/api/studies/{summary['study_id']}", params={"after": 0}).json()
    assert len(detail["trials"]) == len(loaded.trials)
    assert detail["best_trials"][0]["number"] == loaded.best_trial.number
