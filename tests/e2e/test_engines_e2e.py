"""Keras Tuner and grid studies run by two ``tuner-worker`` processes: distinct trials, Hyperband's
continued trials, no grid point twice, a worker killed mid-trial (another one finishes the
study), and every trial readable with ``optuna.load_study``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import TINY_SPACE, make_settings

from tuner_service.migrate import upgrade
from tuner_service.service import Services

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
DIGITS = {"name": "digits", "validation_split": 0.2, "seed": 0}


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "TUNER_DATABASE_URL": url, "TUNER_HEARTBEAT_INTERVAL": "0.5",
            "TUNER_GRACE_PERIOD": "6", "TUNER_POLL_INTERVAL": "0.2",
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def start_worker(url: str, logs: Path, name: str, *extra: str) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("w")
    return subprocess.Popen([str(BIN / "tuner-worker"), "--threads", "1", *extra],
                            env=_env(url), stdout=log, stderr=subprocess.STDOUT)


def wait_final(services: Services, ids: list[int], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [services.study_row(i) for i in ids]
        if all(r.status in ("completed", "failed", "cancelled")
               and r.evaluation_state not in ("pending", "running") for r in rows):
            return
        time.sleep(0.5)
    states = [services.study_row(i).status for i in ids]
    raise AssertionError(f"studies {ids} did not finish: {states}")


KT_OPTIONS = {"hyperband": {"factor": 3}, "bayesian": {"num_initial_points": 2}}


def kt_spec(name: str, algorithm: str, **budget: int) -> dict[str, object]:
    options = KT_OPTIONS.get(algorithm, {})
    return {
        "name": name, "dataset": DIGITS,
        "engine": {"kind": "keras_tuner", "algorithm": algorithm, "options": options},
        "budget": {"max_parallel": 2, **budget},
        "search_space": TINY_SPACE, "seed": 3,
    }


def test_keras_tuner_and_grid_studies_on_two_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    upgrade(url)
    services = Services(make_settings(url))
    random_id = services.create_study(kt_spec("kt-random", "random", n_trials=4,
                                              max_epochs=2)).id
    hb_id = services.create_study(kt_spec("kt-hyperband", "hyperband", n_trials=20,
                                          max_epochs=3)).id
    # Bayesian: 2 random trials, then the Gaussian process on the shared oracle state
    bo_id = services.create_study(kt_spec("kt-bayesian", "bayesian", n_trials=5,
                                          max_epochs=2)).id
    grid_space = {**TINY_SPACE, "filters": {"type": "fixed", "value": 4},
                  "learning_rate": {"type": "categorical", "choices": [0.01, 0.03]},
                  "batch_size": {"type": "categorical", "choices": [32, 64]}}
    grid_id = services.create_study({
        "name": "grid", "dataset": {"name": "synthetic", "shape": [8, 8, 1], "n_classes": 3,
                                    "n_samples": 150, "seed": 0},
        "engine": {"kind": "sklearn_grid", "cv": 2, "scoring": "accuracy"},
        "budget": {"n_trials": 8, "max_epochs": 1, "max_parallel": 2},
        "search_space": grid_space, "seed": 1,
    }).id
    workers = [start_worker(url, tmp_path, f"w{i}", "--exit-when-idle", "4") for i in range(2)]
    try:
        wait_final(services, [random_id, hb_id, bo_id, grid_id])
    finally:
        codes = [w.wait(timeout=120) for w in workers]
        services.close()
    assert codes == [0, 0]
    services = Services(make_settings(url))
    for sid, n in ((random_id, 4), (hb_id, 6), (bo_id, 5), (grid_id, 8)):
        d = services.study_detail(sid)
        assert d["status"] == "completed", d
        assert d["trial_counts"]["complete"] == n, d
    # distinct trials, both workers used
    all_workers: set[str] = set()
    for name in ("kt-random", "kt-hyperband", "kt-bayesian", "grid"):
        study = optuna.load_study(study_name=name, storage=url)
        for t in study.trials:
            assert t.state == TrialState.COMPLETE and t.params and t.intermediate_values
            all_workers.add(t.user_attrs["worker"])
    assert len(all_workers) == 2
    rnd = optuna.load_study(study_name="kt-random", storage=url).trials
    assert len({t.user_attrs["kt_trial_id"] for t in rnd}) == 4
    assert len({tuple(sorted(t.params.items())) for t in rnd}) == 4
    bo = optuna.load_study(study_name="kt-bayesian", storage=url).trials
    assert len({t.user_attrs["kt_trial_id"] for t in bo}) == 5
    assert len({t.user_attrs["worker"] for t in bo}) == 2  # both workers asked its oracle
    assert services.study_row(bo_id).evaluation_state == "done"
    # Hyperband (max_epochs 3, factor 3): 3 one-epoch trials, the best continued to epoch 3
    # from its weights, then 2 three-epoch trials
    hb = optuna.load_study(study_name="kt-hyperband", storage=url).trials
    kt_ids = [t.user_attrs["kt_trial_id"] for t in hb]
    assert len(set(kt_ids)) == 6
    continued = [t for t in hb if "tuner/trial_id" in t.user_attrs["kt_values"]]
    assert len(continued) == 1
    assert sorted(continued[0].intermediate_values) == [1, 2]
    past = next(t for t in hb if t.user_attrs["kt_trial_id"]
                == continued[0].user_attrs["kt_values"]["tuner/trial_id"])
    assert past.params == continued[0].params and past.user_attrs["kt_weights_artifact_id"]
    assert services.study_row(hb_id).n_trials == 6  # the oracle ended the search
    # the grid: every point once, by both workers
    grid = optuna.load_study(study_name="grid", storage=url).trials
    points = Counter(tuple(sorted(t.params.items())) for t in grid)
    assert len(points) == 8 and set(points.values()) == {1}
    assert services.grid(grid_id)["complete"]
    services.close()


def test_killed_worker_does_not_lose_a_keras_tuner_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    upgrade(url)
    services = Services(make_settings(url))
    sid = services.create_study(kt_spec("kt-kill", "random", n_trials=3, max_epochs=40)).id
    first = start_worker(url, tmp_path, "victim")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running, _ = services.list_trials(sid, state="running")
            if running and len(running[0]["intermediate_values"]) >= 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no trial started")
        victim_kt = running[0]["user_attrs"]["kt_trial_id"]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        # idle for longer than the reaper's settle time (grace + longest backoff, 11 s) after
        # its start: the rescuer's own reaper must live to take the victim's trial back
        second = start_worker(url, tmp_path, "rescuer", "--exit-when-idle", "20")
        wait_final(services, [sid])
        assert second.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    d = services.study_detail(sid)
    assert d["status"] == "completed", d
    trials, _ = services.list_trials(sid)
    failed = [t for t in trials if t["state"] == "fail"]
    done = [t for t in trials if t["state"] == "complete"]
    assert len(failed) == 1 and "worker lost" in failed[0]["fail_reason"]
    assert len(done) == 3
    # the oracle retried the lost Keras Tuner trial (same id, same params) on the other worker
    retry = next(t for t in done if t["user_attrs"]["kt_trial_id"] == victim_kt)
    assert retry["params"] == failed[0]["params"] and retry["retry_of"] == failed[0]["number"]
    assert len({t["user_attrs"]["kt_trial_id"] for t in done}) == 3
    study = optuna.load_study(study_name="kt-kill", storage=url)
    assert all(t.intermediate_values for t in study.trials)
    services.close()
