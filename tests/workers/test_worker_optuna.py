"""A worker running Optuna studies in-process: budget, reporting, pruning, warm start, cancel,
failures, final evaluation and the saved best model."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from support import TINY_SPACE, make_settings, tiny_spec

from tuner_service.migrate import upgrade
from tuner_service.service import Services
from workers.datasets import load_dataset
from workers.evaluation import load_trial_model
from workers.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow


def run_worker(services: Services, **kw: object) -> Worker:
    opts = {"exit_when_idle": 0.5, **kw}
    w = Worker(services, WorkerOptions(**opts))  # type: ignore[arg-type]
    w.run()
    return w


def test_study_runs_to_exactly_n_trials_and_is_evaluated(services: Services) -> None:
    row = services.create_study(tiny_spec("full", budget={"n_trials": 3, "max_epochs": 2}))
    w = run_worker(services)
    assert w.trials_run == 3
    detail = services.study_detail(row.id)
    assert detail["status"] == "completed"
    assert detail["trial_counts"]["complete"] == 3
    assert detail["budget"]["finished"] == 3
    assert detail["evaluation_state"] == "done"
    best = services.best(row.id)
    assert best["test_metrics"]["test_accuracy"] >= 0.0
    assert best["worker"] == w.id
    # every trial: params, per-epoch values, worker, times, reproducibility record
    trials, count = services.list_trials(row.id)
    assert count == 3
    for t in trials:
        assert set(t["intermediate_values"]) == {"0", "1"}
        assert t["duration_s"] and t["datetime_start"] and t["datetime_complete"]
        assert t["user_attrs"]["dataset_fingerprint"]
        assert t["user_attrs"]["seed"] is not None
        assert len(t["user_attrs"]["history"]["val_accuracy"]) == 2
        assert t["value"] == max(t["user_attrs"]["history"]["val_accuracy"])


def test_plain_optuna_reads_every_trial(services: Services, sqlite_url: str) -> None:
    services.create_study(tiny_spec("interop", budget={"n_trials": 2, "max_epochs": 2}))
    run_worker(services)
    study = optuna.load_study(study_name="interop", storage=sqlite_url)
    trials = study.get_trials()
    assert len(trials) == 2
    for t in trials:
        assert t.state == TrialState.COMPLETE
        assert {"filters", "dense_units", "learning_rate"} <= set(t.params)
        assert sorted(t.intermediate_values) == [0, 1]


def test_saved_best_model_reproduces_the_recorded_value(services: Services) -> None:
    row = services.create_study(tiny_spec("model", budget={"n_trials": 2, "max_epochs": 3}))
    run_worker(services)
    best = services.best(row.id)
    model = load_trial_model(services, best["model_artifact_id"])
    spec = services.study_row(row.id).spec
    from tuner_service.spec import DatasetSpec

    data = load_dataset(DatasetSpec.model_validate(spec["dataset"]))
    acc = model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["accuracy"]
    assert acc == pytest.approx(best["value"], abs=1e-6)
    name, blob = services.best_model(row.id)
    assert name.endswith(".keras") and len(blob) > 1000


def test_warm_start_trials_run_first(services: Services) -> None:
    row = services.create_study(tiny_spec("warm", budget={"n_trials": 3, "max_epochs": 1}))
    configs = [
        {"filters": 8, "dense_units": 8, "learning_rate": 0.02},
        {"filters": 4, "dense_units": 16, "learning_rate": 0.005},
    ]
    for c in configs:
        services.enqueue_trial(row.id, c)
    run_worker(services)
    trials, _ = services.list_trials(row.id)
    for t, c in zip(trials[:2], configs, strict=True):
        assert {k: t["params"][k] for k in c} == c
        assert t["warm_start"] is True
    assert trials[2]["warm_start"] is False


def test_pruner_really_prunes(services: Services) -> None:
    spec = tiny_spec(
        "prune",
        budget={"n_trials": 4, "max_epochs": 4},
        engine={
            "kind": "optuna",
            "sampler": "random",
            "pruner": "median",
            "pruner_options": {"n_startup_trials": 1, "n_warmup_steps": 0},
        },
    )
    row = services.create_study(spec)
    # one good configuration first, then hopeless ones (tiny learning rate)
    services.enqueue_trial(row.id, {"filters": 8, "dense_units": 16, "learning_rate": 0.03})
    for _ in range(3):
        services.enqueue_trial(row.id, {"filters": 4, "dense_units": 8, "learning_rate": 0.001})
    spec_space = services.study_row(row.id).spec["search_space"]
    assert spec_space["learning_rate"]["low"] == 1e-3
    run_worker(services)
    detail = services.study_detail(row.id)
    assert detail["status"] == "completed"
    assert detail["trial_counts"]["pruned"] >= 1
    pruned, _ = services.list_trials(row.id, state="pruned")
    assert all(len(t["intermediate_values"]) < 4 for t in pruned)


def test_cancel_stops_the_running_trial_at_its_next_epoch_and_keeps_finished_ones(
    services: Services,
) -> None:
    space = {**TINY_SPACE, "early_stopping_patience": {"type": "categorical", "choices": [1, 0]}}
    spec = tiny_spec("cancel-mid", search_space=space, budget={"n_trials": 3, "max_epochs": 500})
    row = services.create_study(spec)
    # trial 0 stops early by itself (patience 1); trial 1 would run 500 epochs
    services.enqueue_trial(
        row.id,
        {"filters": 8, "dense_units": 16, "learning_rate": 0.03, "early_stopping_patience": 1},
    )
    services.enqueue_trial(
        row.id,
        {"filters": 4, "dense_units": 8, "learning_rate": 0.01, "early_stopping_patience": 0},
    )
    worker = Worker(services, WorkerOptions(exit_when_idle=0.5))
    t = threading.Thread(target=worker.run)
    t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running, _ = services.list_trials(row.id, state="running")
        if running and running[0]["number"] == 1 and len(running[0]["intermediate_values"]) >= 2:
            break
        time.sleep(0.1)
    services.cancel(row.id)
    t.join(timeout=60)
    assert not t.is_alive()
    trials, _ = services.list_trials(row.id)
    assert len(trials) == 2
    assert trials[0]["state"] == "complete"  # finished trials are kept
    assert trials[1]["state"] == "fail"
    assert trials[1]["fail_reason"] == "study cancelled"
    assert 2 <= len(trials[1]["intermediate_values"]) < 500
    assert services.study_detail(row.id)["status"] == "cancelled"
    assert services.best(row.id)["number"] == 0


def test_nan_loss_fails_the_trial_not_the_worker(sqlite_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    x[::7, 0] = 1e38  # overflows to inf/NaN inside the network
    y = np.arange(120) % 2
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=y)
    upgrade(sqlite_url)
    services = Services(make_settings(sqlite_url, data_root=tmp_path))
    space = {
        "conv_blocks": {"type": "fixed", "value": 0},
        "learning_rate": {"type": "categorical", "choices": [0.1, 0.01]},
        "early_stopping_patience": {"type": "fixed", "value": 0},
    }
    row = services.create_study(
        tiny_spec(
            "nan",
            search_space=space,
            dataset={"name": "npz", "path": "bad.npz"},
            budget={"n_trials": 2, "max_epochs": 3},
        )
    )
    w = run_worker(services)
    assert w.trials_run == 2  # the worker kept serving
    trials, _ = services.list_trials(row.id)
    assert [t["state"] for t in trials] == ["fail", "fail"]
    assert all("NaN" in t["fail_reason"] for t in trials)
    assert services.study_detail(row.id)["status"] == "completed"
    services.close()


def test_unloadable_dataset_fails_the_study_with_the_reason(
    services: Services, tmp_path: Path
) -> None:
    spec = tiny_spec("nodata", dataset={"name": "npz", "path": "missing.npz"})
    row = services.create_study(spec)
    w = run_worker(services)
    detail = services.study_detail(row.id)
    assert detail["status"] == "failed"
    assert "missing.npz" in detail["status_reason"]
    assert w.trials_run == 1  # the worker went on serving (and found nothing else)


def test_multi_objective_records_both_values(services: Services) -> None:
    spec = tiny_spec(
        "multi",
        objective=[{"metric": "val_accuracy"}, {"metric": "params"}],
        engine={"kind": "optuna", "sampler": "nsga2", "pruner": "median"},
        budget={"n_trials": 2, "max_epochs": 1},
    )
    row = services.create_study(spec)
    run_worker(services)
    trials, _ = services.list_trials(row.id)
    for t in trials:
        assert t["state"] == "complete"
        assert t["values"][1] == t["user_attrs"]["param_count"]
    best = services.best(row.id)
    front = best.get("trials") or [best]
    assert all(len(t["values"]) == 2 for t in front)
    assert services.study_detail(row.id)["evaluation"]["skipped"]


def test_a_trial_taken_back_by_the_reaper_does_not_crash_the_worker(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuner_service.queue import claim
    from workers.engines.optuna_engine import OptunaEngine

    services.create_study(tiny_spec("taken", budget={"n_trials": 2, "max_epochs": 1}))
    worker = Worker(services, WorkerOptions(exit_when_idle=0.5))
    services.repo.register_worker(worker_id=worker.id, host="h", pid=1, device="cpu", info={})
    real_start = OptunaEngine.start

    def start_then_reaped(
        self: OptunaEngine, c: object, worker_id: str, stop: object = None
    ) -> object:
        handle = real_start(self, c, worker_id)  # type: ignore[arg-type]
        services.storage.set_trial_state_values(handle.trial._trial_id, TrialState.FAIL)
        return handle

    monkeypatch.setattr(OptunaEngine, "start", start_then_reaped)
    c = claim(services.repo, worker.id)
    assert c is not None
    worker.run_claim(c)  # must not raise
    trials, _ = services.list_trials(c.study.id)
    assert trials[0]["state"] == "fail"
